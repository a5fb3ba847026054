"""A frozen model plus a trained linear class head: the model a linear-probe run gives.

The head's files sit in every linear-probe checkpoint folder: ``linear_head.safetensors`` (tensors
``weight``, classes x embedding dim, and ``bias``, one per class) and ``linear_head.json`` (class
names, the form of the head). A class's logit is ``unit(image embedding) @ weight[c] + bias[c]``:
multinomial logistic regression on the frozen model's L2-normalised image embeddings.

Version-1 runs saved a cosine head (no ``bias``, no ``form``): logits were ``logit_scale x cosine``
of the image with each row. They still load, as the same logits in the affine form.

The frozen model is saved once per run folder (``runs.layout.BASE_MODEL_DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

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

HEAD_WEIGHTS = "linear_head.safetensors"
HEAD_INFO = "linear_head.json"
AFFINE = "affine"  # linear_head.json "form" of heads with a bias (version-1 heads have no form)


def save_head(folder: Path, weight: torch.Tensor, bias: torch.Tensor, class_names: list[str]) -> None:
    """Write an affine head (``weight`` (C, D), ``bias`` (C,)) and its class names into ``folder``."""
    tensors = {
        "weight": weight.detach().float().cpu().contiguous().clone(),
        "bias": bias.detach().float().cpu().reshape(-1).contiguous().clone(),
    }
    save_safetensors(tensors, folder / HEAD_WEIGHTS)
    atomic_write_json(folder / HEAD_INFO, {"class_names": list(class_names), "form": AFFINE})


def load_head(folder: Path) -> tuple[ClassWeights, list[str]]:
    """(the head's weights, its class names) from a linear-probe checkpoint (either form)."""
    try:
        info = json.loads((folder / HEAD_INFO).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / HEAD_WEIGHTS))
        weight = tensors["weight"].float().numpy()
        names = [str(n) for n in info["class_names"]]
        if info.get("form") == AFFINE:
            bias = tensors["bias"].float().numpy()
            head = ClassWeights.affine(weight, bias)
        else:  # version 1: a cosine head at the model's logit scale
            rows = weight / np.maximum(np.linalg.norm(weight, axis=1, keepdims=True), 1e-12)
            head = ClassWeights(rows.astype(np.float32), float(info["logit_scale"]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: the linear-probe head can't be read ({exc}).") from None
    bias_ok = head.bias is None or head.bias.shape == (len(names),)
    if weight.ndim != 2 or weight.shape[0] != len(names) or not bias_ok:
        raise ModelError(f"{folder}: the linear-probe head does not match its class names.")
    return head, names


class LinearProbeModel(FrozenBaseModel):
    """A frozen model plus a trained linear class head; encoding is the frozen model's.

    ``class_weights(names)`` gives the head for those classes, which takes the place of the
    prompt ensemble in zero-shot classification.
    """

    kind = "linear_probe"

    def __init__(self, base: ImageTextModel, head: ClassWeights, class_names: list[str]):
        if len(head.rows) != len(class_names):
            raise ModelError(f"A head of {len(head.rows)} rows for {len(class_names)} classes.")
        super().__init__(base, class_names)
        self.head = head

    @classmethod
    def from_checkpoint(cls, base: ImageTextModel, folder: Path) -> LinearProbeModel:
        head, names = load_head(folder)
        return cls(base, head, names)

    def class_weights(self, class_names: list[str]) -> ClassWeights | None:
        """The head's weights for the classes given, in that order; None if one was not trained."""
        rows = self.class_rows(class_names)
        return None if rows is None else self.head.select(rows)

    def save(self, folder: str | Path) -> Path:
        """The frozen model (loadable with load_model) plus the head files beside it."""
        folder = Path(folder)
        self.base.save(folder)
        head = self.head.as_affine()
        save_head(folder, torch.from_numpy(head.rows), torch.from_numpy(head.bias), self.class_names)
        return folder
