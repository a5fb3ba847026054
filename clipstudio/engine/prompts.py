"""Prompts: templates and per-class texts, and the prompt-ensemble class embeddings built from them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.embeddings import TextEmbeddingCache, encode_texts, l2_normalise
from clipstudio.engine.errors import ConfigError

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

PLACEHOLDER = "{class_name}"

DEFAULT_TEMPLATES: list[str] = [
    "a medical image of {class_name}.",
    "a photo of {class_name}.",
    "an image showing {class_name}.",
    "a scan showing {class_name}.",
    "{class_name}.",
]


def display_name(class_name: str) -> str:
    """The class name as words: ``"normal_or_benign"`` -> ``"normal or benign"``."""
    return " ".join(class_name.replace("_", " ").split())


def format_prompt(template: str, class_name: str) -> str:
    """Put ``class_name`` wherever the literal ``{class_name}`` appears; every other brace stays as written."""
    if PLACEHOLDER not in template:
        raise ConfigError(f"Prompt template {template!r} has no {PLACEHOLDER} placeholder.")
    # Deliberately not str.format: templates and class names may contain braces of their own.
    return template.replace(PLACEHOLDER, class_name)


@dataclass
class PromptSet:
    """Templates shared by all classes, and optional hand-written texts that replace them for one class."""

    name: str = "default"
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    class_texts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for template in self.templates:
            if PLACEHOLDER not in template:
                raise ConfigError(
                    f"Prompt set '{self.name}': template {template!r} has no {PLACEHOLDER} placeholder."
                )

    def texts_for(self, class_name: str) -> list[str]:
        """The texts describing one class: its own texts if given, else every template filled in."""
        own = self.class_texts.get(class_name)
        if own:
            return list(own)
        if not self.templates:
            raise ConfigError(
                f"Prompt set '{self.name}' has no templates and no texts for class '{class_name}'."
            )
        words = display_name(class_name)
        return [format_prompt(t, words) for t in self.templates]


def load_class_texts(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``{"class": "text"}`` or ``{"class": ["text", ...]}`` JSON into class -> list of texts."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: can't read class texts ({exc.strerror or exc}).") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8 and try again.") from None
    except (ValueError, RecursionError) as exc:  # malformed, or absurd numbers or nesting
        raise ConfigError(f"{path}: not valid JSON ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f'{path}: expected an object mapping class names to texts, like {{"pneumonia": "..."}}.'
        )
    texts: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise ConfigError(
                f"{path}: class '{key}' must map to a non-empty text or a non-empty list of non-empty texts."
            )
        texts[key] = list(value)
    return texts


def save_class_texts(path: str | os.PathLike, texts: dict[str, list[str]]) -> None:
    """Write class texts as JSON (lists, so the file round-trips through ``load_class_texts``)."""
    atomic_write_json(path, {name: list(values) for name, values in texts.items()})


def class_text_embeddings(
    model: ImageTextModel,
    class_names: list[str],
    prompts: PromptSet,
    *,
    batch_size: int = 256,
    text_cache: TextEmbeddingCache | None = None,
) -> np.ndarray:
    """(C, D) float32: per class, the renormalised mean of its L2-normalised text embeddings.

    ``text_cache``: encode only texts it doesn't hold yet (re-scoring after a prompt edit).
    """
    per_class = [prompts.texts_for(name) for name in class_names]
    flat = [text for texts in per_class for text in texts]
    if text_cache is not None:
        emb = text_cache.encode(model, flat, batch_size=batch_size)
    else:
        emb = l2_normalise(encode_texts(model, flat, batch_size=batch_size))
    out = np.zeros((len(class_names), emb.shape[1]), dtype=np.float32)
    start = 0
    for c, texts in enumerate(per_class):
        out[c] = emb[start : start + len(texts)].mean(axis=0)
        start += len(texts)
    return l2_normalise(out)


def compare_prompt_sets(
    image_embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    model: ImageTextModel,
    prompt_sets: list[PromptSet],
    *,
    text_cache: TextEmbeddingCache | None = None,
) -> list[dict]:
    """Zero-shot accuracy of each prompt set on already-encoded images; only the texts are encoded.

    Returns one row per set: ``name``, ``accuracy``, ``balanced_accuracy`` and ``per_class_recall``
    (class name -> recall; ``None`` for a class with no images).
    """
    from clipstudio.engine.evaluation.zero_shot import zero_shot_from_embeddings

    rows = []
    for prompt_set in prompt_sets:
        result = zero_shot_from_embeddings(
            image_embeddings,
            labels,
            class_text_embeddings(model, class_names, prompt_set, text_cache=text_cache),
            class_names,
            logit_scale=model.logit_scale,
            n_bootstrap=0,
            with_predictions=False,
        )
        recall = {name: (m["recall"] if m["support"] else None) for name, m in result.per_class.items()}
        rows.append(
            {
                "name": prompt_set.name,
                "accuracy": result.accuracy,
                "balanced_accuracy": result.balanced_accuracy,
                "per_class_recall": recall,
            }
        )
    return rows
