"""A frozen model plus a Tip-Adapter cache: the model a ``tip_adapter`` or ``tip_adapter_f`` run gives.

Tip-Adapter (Zhang et al., ECCV 2022) classifies with the zero-shot head plus a key-value cache of
the training images. With ``f`` the L2-normalised image embedding, ``keys`` (N, D) the training
images' embeddings (Tip-Adapter-F: trained from there), ``values`` (N, C) their one-hot classes,
``class_embeddings`` (C, D) the unit zero-shot text rows and ``s`` the model's logit scale::

    logits = s * f @ class_embeddings.T + alpha * exp(-beta * (1 - f @ keys.T)) @ values

``alpha`` = 0 is zero-shot classification exactly. Each checkpoint holds the cache in
``tip_adapter_cache.safetensors`` (``keys``, ``values``, ``class_embeddings``) and the class names,
``alpha``, ``beta`` and ``logit_scale`` in ``tip_adapter.json``; the frozen model is saved once per
run folder (``runs.layout.BASE_MODEL_DIR``). The cache is N x D float32: 12,000 images x 1,280
dimensions is 61 MB per checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.class_weights import ClassWeights
from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.frozen_base import FrozenBaseModel
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.safetensors_io import save_safetensors

CACHE_WEIGHTS = "tip_adapter_cache.safetensors"
CACHE_INFO = "tip_adapter.json"
FORMULA = (
    "logits = logit_scale * unit(image_embedding) @ class_embeddings.T "
    "+ alpha * exp(-beta * (1 - unit(image_embedding) @ keys.T)) @ values"
)
_CHUNK_CELLS = 4_000_000  # (image, cache entry) affinities held in memory at once


@dataclass(frozen=True)
class TipAdapterCache:
    """The cache and the zero-shot head, and how much of each goes into the logits."""

    keys: np.ndarray  # (N, D) float32
    values: np.ndarray  # (N, C) float32 one-hot
    text_rows: np.ndarray  # (C, D) float32 unit zero-shot rows
    scale: float  # the model's logit scale
    alpha: float
    beta: float

    def zero_shot_logits(self, unit_images: np.ndarray) -> np.ndarray:
        return self.scale * (unit_images @ self.text_rows.astype(np.float64).T)

    def cache_logits(self, unit_images: np.ndarray, beta: float) -> np.ndarray:
        """(N, C) ``exp(-beta * (1 - images @ keys.T)) @ values``, a few thousand images at a time."""
        keys, values = self.keys.astype(np.float64), self.values.astype(np.float64)
        out = np.zeros((len(unit_images), values.shape[1]))
        rows = max(1, _CHUNK_CELLS // max(1, len(keys)))
        for start in range(0, len(unit_images), rows):
            affinity = np.exp(-beta * (1.0 - unit_images[start : start + rows] @ keys.T))
            out[start : start + rows] = affinity @ values
        return out

    def logits(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, C) float64 logits of (N, D) image embeddings (normalised here; any length)."""
        x = np.asarray(image_emb, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out = self.zero_shot_logits(x)
        return out if self.alpha == 0.0 else out + self.alpha * self.cache_logits(x, self.beta)

    def select(self, index: list[int]) -> TipAdapterCache:
        """The cache for these classes, in this order (entries of other classes then add nothing)."""
        return dataclasses.replace(self, values=self.values[:, index].copy(), text_rows=self.text_rows[index].copy())

    def zero_shot(self) -> ClassWeights:
        """The cosine head this cache adds to: what ``alpha`` = 0 classifies with."""
        return ClassWeights(self.text_rows, self.scale)


def save_cache(folder: Path, cache: TipAdapterCache, class_names: list[str], extra: dict[str, Any] | None = None) -> None:
    """Write ``cache`` and its class names into ``folder``; ``extra``: more JSON keys (training state)."""
    tensors = {
        "keys": torch.from_numpy(np.ascontiguousarray(cache.keys, dtype=np.float32)),
        "values": torch.from_numpy(np.ascontiguousarray(cache.values, dtype=np.float32)),
        "class_embeddings": torch.from_numpy(np.ascontiguousarray(cache.text_rows, dtype=np.float32)),
    }
    save_safetensors(tensors, folder / CACHE_WEIGHTS)
    info = {
        "class_names": list(class_names),
        "alpha": float(cache.alpha),
        "beta": float(cache.beta),
        "logit_scale": float(cache.scale),
        "formula": FORMULA,
        **(extra or {}),
    }
    atomic_write_json(folder / CACHE_INFO, info)


def load_cache(folder: Path) -> tuple[TipAdapterCache, list[str], dict[str, Any]]:
    """(the cache, its class names, the whole ``tip_adapter.json``) from a Tip-Adapter checkpoint."""
    try:
        info = json.loads((folder / CACHE_INFO).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / CACHE_WEIGHTS))
        names = [str(n) for n in info["class_names"]]
        cache = TipAdapterCache(
            keys=tensors["keys"].float().numpy(),
            values=tensors["values"].float().numpy(),
            text_rows=tensors["class_embeddings"].float().numpy(),
            scale=float(info["logit_scale"]),
            alpha=float(info["alpha"]),
            beta=float(info["beta"]),
        )
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: the Tip-Adapter cache can't be read ({exc}).") from None
    n, c = len(cache.keys), len(names)
    if cache.values.shape != (n, c) or cache.text_rows.shape != (c, cache.keys.shape[1]):
        raise ModelError(f"{folder}: the Tip-Adapter cache does not match its class names.")
    return cache, names, info


class TipAdapterModel(FrozenBaseModel):
    """A frozen model plus a Tip-Adapter cache; encoding is the frozen model's.

    ``class_scorer(names)`` gives the classifier for those classes, which takes the place of the
    prompt ensemble in zero-shot classification.
    """

    kind = "tip_adapter"

    def __init__(self, base: ImageTextModel, cache: TipAdapterCache, class_names: list[str]):
        if cache.values.shape[1] != len(class_names):
            raise ModelError(f"A cache of {cache.values.shape[1]} classes for {len(class_names)} class names.")
        super().__init__(base, class_names)
        self.cache = cache

    @classmethod
    def from_checkpoint(cls, base: ImageTextModel, folder: Path) -> TipAdapterModel:
        cache, names, _ = load_cache(folder)
        return cls(base, cache, names)

    def class_scorer(self, class_names: list[str]) -> TipAdapterCache | None:
        """The classifier for the classes given, in that order; None if one was not trained."""
        rows = self.class_rows(class_names)
        return None if rows is None else self.cache.select(rows)

    def with_alpha(self, alpha: float) -> TipAdapterModel:
        """The same model with the cache weighted ``alpha`` (0: zero-shot classification)."""
        return TipAdapterModel(self.base, dataclasses.replace(self.cache, alpha=float(alpha)), self.class_names)

    def save(self, folder: str | Path) -> Path:
        """The frozen model (loadable with load_model) plus the cache files beside it."""
        folder = Path(folder)
        self.base.save(folder)
        save_cache(folder, self.cache, self.class_names)
        return folder
