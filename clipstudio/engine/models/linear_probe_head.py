"""A frozen model plus a trained linear class head: the model a linear-probe run gives.

The head's files sit in every linear-probe checkpoint folder: ``linear_head.safetensors`` (the
(classes x embedding dim) weight) and ``linear_head.json`` (class names, logit scale). The frozen
model is saved once per run folder (``runs.layout.BASE_MODEL_DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.safetensors_io import save_safetensors

HEAD_WEIGHTS = "linear_head.safetensors"
HEAD_INFO = "linear_head.json"


def save_head(folder: Path, weight: torch.Tensor, class_names: list[str], logit_scale: float) -> None:
    """Write the head's weight and class names into ``folder``."""
    tensor = weight.detach().float().cpu().contiguous().clone()
    save_safetensors({"weight": tensor}, folder / HEAD_WEIGHTS)
    atomic_write_json(
        folder / HEAD_INFO, {"class_names": list(class_names), "logit_scale": float(logit_scale)}
    )


def load_head(folder: Path) -> tuple[torch.Tensor, list[str], float]:
    """(weight (C, D), class names, logit scale) from a linear-probe checkpoint."""
    try:
        info = json.loads((folder / HEAD_INFO).read_text(encoding="utf-8"))
        weight = load_file(str(folder / HEAD_WEIGHTS))["weight"]
        names = [str(n) for n in info["class_names"]]
        scale = float(info["logit_scale"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: the linear-probe head can't be read ({exc}).") from None
    if weight.ndim != 2 or weight.shape[0] != len(names):
        raise ModelError(f"{folder}: the linear-probe head does not match its class names.")
    return weight, names, scale


class LinearProbeModel(ImageTextModel):
    """A frozen model plus a trained linear class head; encoding is the frozen model's.

    ``class_embeddings(names)`` gives the head's rows for those classes, which take the place of
    the prompt-ensemble class embeddings in zero-shot classification.
    """

    kind = "linear_probe"

    def __init__(self, base: ImageTextModel, weight: np.ndarray, class_names: list[str]):
        self.base = base
        w = np.asarray(weight, dtype=np.float32)
        self.head = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        self.class_names = list(class_names)

    @classmethod
    def from_checkpoint(cls, base: ImageTextModel, folder: Path) -> LinearProbeModel:
        weight, names, _ = load_head(folder)
        return cls(base, weight.numpy(), names)

    def class_embeddings(self, class_names: list[str]) -> np.ndarray | None:
        """(C, D) L2-normalised head rows in the order given, or None if a class was not trained."""
        index = {name: i for i, name in enumerate(self.class_names)}
        if any(name not in index for name in class_names):
            return None
        return self.head[[index[name] for name in class_names]].copy()

    # Everything else is the frozen model's.
    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def logit_scale(self) -> float:
        return self.base.logit_scale

    @property
    def max_text_tokens(self) -> int:
        return self.base.max_text_tokens

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, device) -> LinearProbeModel:
        self.base.to(device)
        return self

    def preprocess(self, images):
        return self.base.preprocess(images)

    def encode_images(self, pixel_values):
        return self.base.encode_images(pixel_values)

    def encode_texts(self, texts):
        return self.base.encode_texts(texts)

    def count_tokens(self, texts):
        return self.base.count_tokens(texts)

    def fingerprint(self) -> str:
        return self.base.fingerprint()  # image and text embeddings are the frozen model's

    def image_fingerprint(self) -> str:
        return self.base.image_fingerprint()

    def image_input_spec(self):
        return self.base.image_input_spec()

    def save(self, folder: str | Path) -> Path:
        """The frozen model (loadable with load_model) plus the head files beside it."""
        folder = Path(folder)
        self.base.save(folder)
        save_head(folder, torch.from_numpy(self.head), self.class_names, self.logit_scale)
        return folder
