"""Prompts: templates and per-class texts, their files, and the prompt set a config or a run names.

Text only: turning prompts into class embeddings is ``engine.evaluation.zero_shot``'s work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clipstudio.engine.config import PromptConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import read_run_config, read_run_info
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.text_files import read_json

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
    raw = read_json(path, "class-texts file", error=ConfigError)
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


def prompt_set_from_config(config: PromptConfig, *, name: str = "default") -> PromptSet:
    """The prompt set a config names: its templates (or the defaults) and its class-texts file, read now."""
    class_texts = load_class_texts(config.class_texts) if config.class_texts else {}
    templates = list(config.templates) or list(DEFAULT_TEMPLATES)
    return PromptSet(name=name, templates=templates, class_texts=class_texts)


def run_prompt_set(run_dir: str | os.PathLike) -> PromptSet:
    """The prompts a run trained with: its recorded class texts, else its templates (or the defaults).

    run.json records every class's texts, so this works after the class-texts file has moved.
    """
    cfg = read_run_config(run_dir)
    class_texts = {str(k): list(v) for k, v in (read_run_info(run_dir).get("class_texts") or {}).items()}
    if not class_texts and cfg.prompts.class_texts and Path(cfg.prompts.class_texts).is_file():
        class_texts = load_class_texts(cfg.prompts.class_texts)
    templates = list(cfg.prompts.templates) or list(DEFAULT_TEMPLATES)
    return PromptSet(name="run", templates=templates, class_texts=class_texts)
