"""Shared plumbing for models backed by one torch ``nn.Module``: devices, batched encoding, fingerprints.

Inference (``encode_images`` / ``encode_texts``) runs under bf16 autocast by default on CPUs with
native bf16 (``runtime.precision``: checked and measured) and on CUDA GPUs with native bf16: 1-3x faster than fp32 on the
benchmark CPU (docs/PERFORMANCE.md), embeddings within cosine 0.99 of fp32. Set ``CLIPSTUDIO_BF16_INFERENCE=0`` (or ``model.bf16_inference =
False``) for full fp32. The precision is part of the fingerprint, so the embedding cache never
mixes bf16 and fp32 vectors. Training precision is the trainer's ``amp`` setting, not this.
"""

from __future__ import annotations

import contextlib
import os
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F

from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.fingerprint import weights_digest, weights_version
from clipstudio.engine.runtime.precision import bf16_is_fast

MAX_LOGIT_SCALE = 100.0
_TEXT_CHUNK = 256
BF16_INFERENCE_ENV = "CLIPSTUDIO_BF16_INFERENCE"


def bf16_inference_default() -> bool:
    """bf16 inference unless ``CLIPSTUDIO_BF16_INFERENCE`` is 0/false/no/off."""
    return os.environ.get(BF16_INFERENCE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class TorchImageTextModel(ImageTextModel):
    """Implements the inference half of ``ImageTextModel`` on top of the differentiable ``forward_*`` hooks.

    Subclasses provide ``torch_module``, ``tokenize``, ``forward_images``/``forward_texts`` (unnormalised
    features via ``_image_features``/``_text_features``), the log-temperature parameter and
    ``_fingerprint_extra`` (preprocessing and tokenizer facts that change embeddings).
    """

    def __init__(self) -> None:
        self._fingerprint: str | None = None
        self._fingerprint_version: tuple | None = None
        self.bf16_inference = bf16_inference_default()  # see the module docstring

    # --- subclass hooks --------------------------------------------------------------------------
    @abstractmethod
    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor: ...

    @abstractmethod
    def _log_logit_scale(self) -> torch.Tensor: ...

    @abstractmethod
    def _fingerprint_extra(self) -> dict[str, Any]: ...

    # --- ImageTextModel --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.torch_module.parameters()).device

    def to(self, device: str | torch.device) -> TorchImageTextModel:
        self.torch_module.to(device)
        return self

    @property
    def logit_scale(self) -> float:
        return float(self.logit_scale_tensor().detach())

    def logit_scale_tensor(self) -> torch.Tensor:
        return self._log_logit_scale().exp().clamp(max=MAX_LOGIT_SCALE)

    def forward_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._image_features(pixel_values.to(self.device)).float(), dim=-1)

    def forward_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return F.normalize(self._text_features(tokens).float(), dim=-1)

    @property
    def inference_precision(self) -> str:
        """The precision ``encode_images`` / ``encode_texts`` compute in here: "bf16" or "fp32"."""
        # getattr: subclasses that don't call this __init__ still work (in fp32 unless the env says so).
        wanted = getattr(self, "bf16_inference", None)
        wanted = bf16_inference_default() if wanted is None else wanted
        return "bf16" if wanted and bf16_is_fast(self.device) else "fp32"

    def _inference_autocast(self) -> contextlib.AbstractContextManager:
        if self.inference_precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if len(pixel_values) == 0:
            return torch.zeros(0, self.embed_dim)
        with _eval_mode(self.torch_module), torch.inference_mode(), self._inference_autocast():
            return self.forward_images(pixel_values).cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.embed_dim)
        chunks = []
        with _eval_mode(self.torch_module), torch.inference_mode(), self._inference_autocast():
            for start in range(0, len(texts), _TEXT_CHUNK):
                chunks.append(
                    self.forward_texts(self.tokenize(list(texts[start : start + _TEXT_CHUNK]))).cpu()
                )
        return torch.cat(chunks)

    def fingerprint(self) -> str:
        # Cached, but recomputed after any in-place weight change (training), so the embedding
        # cache never serves embeddings of older weights.
        version = (*weights_version(self.torch_module), self.inference_precision)
        if self._fingerprint is None or version != self._fingerprint_version:
            extra = {"kind": self.kind, **self._fingerprint_extra()}
            if self.inference_precision != "fp32":  # fp32 fingerprints stay as they always were
                extra["inference_precision"] = self.inference_precision
            self._fingerprint = weights_digest(self.torch_module, extra)
            self._fingerprint_version = version
        return self._fingerprint


class _eval_mode:
    """Context manager: module in eval mode inside, previous train/eval mode restored after."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)
