"""What CLIP Studio's own two-tower models share: an image tower and a Hugging Face text tower, each
with a projection into one embedding space, a tokenizer, and image preprocessing.

``DualEncoderModel`` (the built-in model: a CNN image tower) and ``ViTHFTextModel`` (open_clip's timm
ViT + BERT towers, e.g. BiomedCLIP) differ only in their towers, how they are saved and loaded, and
what their fingerprint records; everything below is the same for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.frozen_files import FrozenFiles
from clipstudio.engine.models.image_preprocessing import ImageInputSpec, ImagePreprocessing
from clipstudio.engine.models.manifest import MANIFEST_NAME
from clipstudio.engine.models.torch_model import TorchImageTextModel
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.safetensors_io import save_safetensors

WEIGHTS_NAME = "model.safetensors"
TEXT_DIR_NAME = "text_encoder"


class ProjectedTowersModel(TorchImageTextModel):
    """``TorchImageTextModel`` over ``module`` (with ``image_features``, ``text_features``,
    ``image_projection`` and ``logit_scale``), a Hugging Face ``tokenizer`` and ``preprocessing``.

    ``TOKEN_KEYS``: the tokenizer outputs the text tower takes (None: all of them). Subclasses give
    ``_manifest()`` (what ``save`` writes last) and ``_fingerprint_extra()``.
    """

    TOKEN_KEYS: tuple[str, ...] | None = None
    splits_image_tower = True  # module.image_features(x) == module.image_projection(module.image_trunk(x))

    def __init__(self, module: nn.Module, tokenizer: Any, preprocessing: Any, max_text_tokens: int) -> None:
        super().__init__()
        self.module = module
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self._max_text_tokens = int(max_text_tokens)
        self._tokenizer_files = FrozenFiles(
            lambda folder: self.tokenizer.save_pretrained(folder), key=lambda: id(self.tokenizer)
        )

    # --- properties ------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return self.module.image_projection.out_features

    @property
    def max_text_tokens(self) -> int:
        return self._max_text_tokens

    @property
    def torch_module(self) -> nn.Module:
        return self.module

    # --- encoding --------------------------------------------------------------------------------
    def preprocess(self, images: list) -> torch.Tensor:
        return self.preprocessing(images)

    def image_input_spec(self) -> ImageInputSpec:
        p = self.preprocessing
        return ImageInputSpec(size=p.image_size, mean=tuple(p.mean), std=tuple(p.std))

    def image_preprocessing(self) -> ImagePreprocessing:
        return self.preprocessing

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        # Padded to the longest text, not to the context length: padding is masked, so embeddings are the same.
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        )
        keys = self.TOKEN_KEYS if self.TOKEN_KEYS is not None else tuple(batch.keys())
        return {k: batch[k].to(self.device) for k in keys}

    def count_tokens(self, texts: list[str]) -> list[int]:
        ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.module.image_features(pixel_values)

    def forward_image_trunk(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.module.image_trunk(pixel_values.to(self.device))

    def forward_images_from_trunk(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.module.image_projection(features.to(self.device)).float(), dim=-1)

    def _text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module.text_features(tokens)

    def _log_logit_scale(self) -> torch.Tensor:
        return self.module.logit_scale

    # --- save / load -----------------------------------------------------------------------------
    def _save_folder(self, folder: str | Path, configs: dict[str, Any]) -> Path:
        """Write ``configs`` (sub-folder name -> a transformers config), the tokenizer beside the text
        tower's, the weights, and the manifest last: a folder with a manifest is a complete model."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, config in configs.items():
            config.save_pretrained(folder / name)
        self._tokenizer_files.write(folder / TEXT_DIR_NAME)
        save_safetensors(self.module.state_dict(), folder / WEIGHTS_NAME, metadata={"format": "pt"})
        atomic_write_json(folder / MANIFEST_NAME, self._manifest())
        return folder


def load_weights(module: nn.Module, folder: Path) -> None:
    """Load ``folder``'s safetensors weights into ``module`` (strict); a one-line ModelError otherwise."""
    path = folder / WEIGHTS_NAME
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:  # e.g. a pickle renamed to model.safetensors: never unpickled
        raise ModelError(f"{str(path)!r} is not a readable safetensors file ({exc}).") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"Weights in {str(path)!r} don't match its manifest: {exc}") from None


__all__ = ["TEXT_DIR_NAME", "WEIGHTS_NAME", "ProjectedTowersModel", "load_weights"]
