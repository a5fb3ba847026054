"""Shared plumbing for models backed by one torch ``nn.Module``: devices, batched encoding, fingerprints."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F

from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.fingerprint import weights_digest, weights_version

MAX_LOGIT_SCALE = 100.0
_TEXT_CHUNK = 256


class TorchImageTextModel(ImageTextModel):
    """Implements the inference half of ``ImageTextModel`` on top of the differentiable ``forward_*`` hooks.

    Subclasses provide ``torch_module``, ``tokenize``, ``forward_images``/``forward_texts`` (unnormalised
    features via ``_image_features``/``_text_features``), the log-temperature parameter and
    ``_fingerprint_extra`` (preprocessing and tokenizer facts that change embeddings).
    """

    def __init__(self) -> None:
        self._fingerprint: str | None = None
        self._fingerprint_version: tuple[int, ...] | None = None

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

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if len(pixel_values) == 0:
            return torch.zeros(0, self.embed_dim)
        with _eval_mode(self.torch_module), torch.inference_mode():
            return self.forward_images(pixel_values).cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.embed_dim)
        chunks = []
        with _eval_mode(self.torch_module), torch.inference_mode():
            for start in range(0, len(texts), _TEXT_CHUNK):
                chunks.append(
                    self.forward_texts(self.tokenize(list(texts[start : start + _TEXT_CHUNK]))).cpu()
                )
        return torch.cat(chunks)

    def fingerprint(self) -> str:
        # Cached, but recomputed after any in-place weight change (training), so the embedding
        # cache never serves embeddings of older weights.
        version = weights_version(self.torch_module)
        if self._fingerprint is None or version != self._fingerprint_version:
            extra = {"kind": self.kind, **self._fingerprint_extra()}
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
