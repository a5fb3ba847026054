"""Stable digests of a model's weights and preprocessing: the embedding cache's key.

A training run that leaves the image encoder as it was (linear probe, locked image tower) gives a
model whose image embeddings are its starting model's. The run folder records the starting model's
image key and image-encoder digest (``image_encoder_record``); loading the run checks the digest
again (``adopt_image_embeddings``), and on a match the trained model reads and writes the image
embeddings the starting model already cached, instead of encoding every image again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

# ``model`` below is an ImageTextModel, typed Any: models.base imports this module, not the reverse.

# How the image tower is told apart by its top-level module names (here and in training's ``tower_modules``).
IMAGE_TOWER_WORDS = ("vision", "visual", "image")


def weights_digest(module: torch.nn.Module, extra: dict[str, Any] | None = None) -> str:
    """sha256 over every state-dict tensor (name, dtype, shape, bytes) plus ``extra`` as canonical JSON.

    Device-independent and stable across processes: the same weights give the same hex digest.
    """
    return _tensors_digest(module.state_dict(), extra)


def _tensors_digest(tensors: Mapping[str, torch.Tensor], extra: dict[str, Any] | None) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(extra or {}, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def weights_version(module: torch.nn.Module) -> tuple[int, ...]:
    """Cheap token that changes whenever a parameter or buffer is modified in place (e.g. an optimizer step).

    Uses torch's per-tensor version counter, so a cached fingerprint can be reused until training
    touches the weights.
    """
    tensors = [*module.parameters(), *module.buffers()]
    return (len(tensors), *(id(t) for t in tensors), sum(t._version for t in tensors))


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of the tokenizer's vocabulary and rules (they decide token ids, hence embeddings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation/padding are call-time state the tokenizer remembers after use, not its identity.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(state, sort_keys=True, ensure_ascii=False)
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def image_encoder_digest(model: Any) -> str | None:
    """sha256 of what decides a model's image embeddings: the image tower's weights, the preprocessing, the precision.

    Two models with the same digest embed every image alike. None when the model's image tower
    can't be told apart from the rest of its weights.
    """
    module = model.torch_module
    image_part = {
        name: tensor
        for name, tensor in module.state_dict().items()
        if any(word in name.split(".", 1)[0].lower() for word in IMAGE_TOWER_WORDS)
    }
    if not image_part:
        return None
    extra = {
        "class": type(model).__name__,
        # The model's own description of its preprocessing (and tokenizer, which training leaves alone).
        "setup": model._fingerprint_extra(),
        "precision": getattr(model, "inference_precision", "fp32"),
    }
    return _tensors_digest(image_part, extra)


def image_encoder_record(model: Any) -> dict[str, str] | None:
    """What a run folder records of its starting model: the key of its cached image embeddings and its image-encoder digest."""
    digest = image_encoder_digest(model)
    return None if digest is None else {"fingerprint": model.image_fingerprint(), "digest": digest}


@dataclass(frozen=True)
class SharedImageEncoder:
    """The model's image encoder is verifiably the one whose embeddings are cached under ``fingerprint``.

    Holds while the weights and the precision stay as they were when checked (``state``): WiSE-FT
    mixing the weights in place, for one, ends it.
    """

    fingerprint: str
    state: tuple

    @staticmethod
    def current_state(model: Any) -> tuple:
        return (*weights_version(model.torch_module), getattr(model, "inference_precision", "fp32"))

    def holds_for(self, model: Any) -> bool:
        return self.current_state(model) == self.state


def adopt_image_embeddings(model: Any, record: Any) -> bool:
    """Key ``model``'s image embeddings like the recorded starting model's when its image encoder is the same.

    ``record`` is what ``image_encoder_record`` gave (None or a malformed record: nothing adopted).
    True when the digests match and ``model.image_fingerprint()`` now gives the recorded key.
    """
    if not isinstance(record, dict) or not isinstance(record.get("fingerprint"), str):
        return False
    if image_encoder_digest(model) != record.get("digest"):
        return False
    model.shared_image_encoder = SharedImageEncoder(record["fingerprint"], SharedImageEncoder.current_state(model))
    return True
