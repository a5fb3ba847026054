"""A dual encoder from parts: any registered image backbone + any HF text encoder, each with a projection.

Saved as one ``model.safetensors`` (all weights) + ``clipstudio_model.json`` (how to rebuild it) +
``text_encoder/`` (the text encoder's config and tokenizer files), so ``load`` works offline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.backbones import backbone_spec, build_backbone
from clipstudio.engine.models.fingerprint import tokenizer_digest
from clipstudio.engine.models.image_preprocessing import ImagePreprocessing
from clipstudio.engine.models.manifest import FORMAT_VERSION, MANIFEST_NAME, read_manifest
from clipstudio.engine.models.projected_towers import (
    TEXT_DIR_NAME,
    WEIGHTS_NAME,
    ProjectedTowersModel,
    load_weights,
)

DEFAULT_LOGIT_SCALE = 1 / 0.07  # CLIP's initial temperature


class DualEncoderModule(nn.Module):
    """Image backbone -> linear projection; text encoder -> mean pooling -> linear projection; log temperature."""

    def __init__(
        self,
        image_backbone: nn.Module,
        text_encoder: nn.Module,
        embed_dim: int,
        *,
        projection_bias: bool = True,
        text_normalize: bool = False,
        logit_scale_init: float = DEFAULT_LOGIT_SCALE,
    ) -> None:
        super().__init__()
        self.image_backbone = image_backbone
        self.image_projection = nn.Linear(image_backbone.feature_dim, embed_dim, bias=projection_bias)
        self.text_encoder = text_encoder
        self.text_projection = nn.Linear(text_encoder.config.hidden_size, embed_dim, bias=projection_bias)
        # Stored as a log, like CLIP, so the optimiser works on the temperature's scale.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        self.text_normalize = text_normalize

    def image_trunk(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower's output before the projection."""
        return self.image_backbone(pixel_values)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.image_projection(self.image_trunk(pixel_values))

    def pooled_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the last hidden states over real (non-padding) tokens, as sentence-transformers does."""
        hidden = self.text_encoder(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1) if self.text_normalize else pooled

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_projection(self.pooled_text(tokens))


def load_text_encoder(source: str | Path) -> tuple[nn.Module, Any]:
    """A pretrained HF text encoder + tokenizer from a local folder (safetensors only, no remote code)."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(source)
    if not folder.is_dir():
        raise ModelError(f"Text encoder folder {str(folder)!r} does not exist.")
    try:
        model, info = AutoModel.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Can't load a text encoder from {str(folder)!r} (safetensors weights expected): {exc}"
        ) from None
    if info.get("missing_keys"):
        # Randomly initialised weights would make embeddings (and fingerprints) differ run to run.
        raise ModelError(
            f"Text encoder in {str(folder)!r} lacks weights for {sorted(info['missing_keys'])[:5]}."
        )
    return model, tokenizer


class DualEncoderModel(ProjectedTowersModel):
    """``ImageTextModel`` over a ``DualEncoderModule`` plus its tokenizer and image preprocessing."""

    kind = "dual_encoder"

    def __init__(
        self,
        module: DualEncoderModule,
        tokenizer: Any,
        *,
        image_backbone: str,
        image_backbone_config: dict[str, Any] | None = None,
        text_encoder_name: str = "",
        preprocessing: ImagePreprocessing | None = None,
        max_text_tokens: int | None = None,
    ) -> None:
        limits = [getattr(module.text_encoder.config, "max_position_embeddings", None), max_text_tokens]
        tokenizer_limit = getattr(tokenizer, "model_max_length", None)
        if tokenizer_limit and tokenizer_limit < 1_000_000:  # HF uses a huge sentinel for "no limit"
            limits.append(tokenizer_limit)
        super().__init__(
            module, tokenizer, preprocessing or backbone_spec(image_backbone).preprocessing,
            min(v for v in limits if v),
        )
        self.image_backbone = image_backbone
        self.image_backbone_config = dict(image_backbone_config or {})
        self.text_encoder_name = text_encoder_name

    @classmethod
    def create(
        cls,
        *,
        image_backbone: str,
        text_encoder: nn.Module,
        tokenizer: Any,
        embed_dim: int = 512,
        image_backbone_config: dict[str, Any] | None = None,
        pretrained_image: bool = True,
        text_encoder_name: str = "",
        preprocessing: ImagePreprocessing | None = None,
        max_text_tokens: int | None = None,
        projection_bias: bool = True,
        text_normalize: bool = False,
        logit_scale_init: float = DEFAULT_LOGIT_SCALE,
    ) -> DualEncoderModel:
        """A new dual encoder: backbone (packaged weights if ``pretrained_image``), given text encoder, fresh projections."""
        backbone = build_backbone(image_backbone, image_backbone_config, pretrained=pretrained_image)
        module = DualEncoderModule(
            backbone,
            text_encoder,
            embed_dim,
            projection_bias=projection_bias,
            text_normalize=text_normalize,
            logit_scale_init=logit_scale_init,
        )
        return cls(
            module,
            tokenizer,
            image_backbone=image_backbone,
            image_backbone_config=image_backbone_config,
            text_encoder_name=text_encoder_name or getattr(text_encoder.config, "_name_or_path", ""),
            preprocessing=preprocessing,
            max_text_tokens=max_text_tokens,
        )

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {"manifest": self._manifest(), "tokenizer": tokenizer_digest(self.tokenizer)}

    # --- save / load -----------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {
            "kind": "dual_encoder",
            "format_version": FORMAT_VERSION,
            "embed_dim": self.embed_dim,
            "image_backbone": {"name": self.image_backbone, "config": self.image_backbone_config},
            "text_encoder": {
                "name": self.text_encoder_name,
                "folder": TEXT_DIR_NAME,
                "pooling": "mean",
                "normalize": self.module.text_normalize,
            },
            "projection_bias": self.module.image_projection.bias is not None,
            "max_text_tokens": self.max_text_tokens,
            "preprocessing": self.preprocessing.to_dict(),
        }

    def save(self, folder: str | Path) -> Path:
        return self._save_folder(folder, {TEXT_DIR_NAME: self.module.text_encoder.config})

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> DualEncoderModel:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        folder = Path(folder)
        manifest = read_manifest(folder)
        try:
            backbone_info = manifest["image_backbone"]
            text_info = manifest["text_encoder"]
            text_dir = folder / text_info.get("folder", TEXT_DIR_NAME)
            preprocessing = ImagePreprocessing.from_dict(manifest["preprocessing"])
            embed_dim = int(manifest["embed_dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{folder / MANIFEST_NAME} is incomplete or invalid ({exc!r}).") from None
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelError(
                f"{str(folder)!r} has no {WEIGHTS_NAME}; expected a saved CLIP Studio dual encoder."
            )
        try:
            config = AutoConfig.from_pretrained(text_dir, local_files_only=True)
            text_encoder = AutoModel.from_config(config)
            tokenizer = AutoTokenizer.from_pretrained(text_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"Can't rebuild the text encoder from {str(text_dir)!r}: {exc}") from None
        backbone = build_backbone(backbone_info["name"], backbone_info.get("config"), pretrained=False)
        module = DualEncoderModule(
            backbone,
            text_encoder,
            embed_dim,
            projection_bias=bool(manifest.get("projection_bias", True)),
            text_normalize=bool(text_info.get("normalize", False)),
        )
        load_weights(module, folder)
        model = cls(
            module,
            tokenizer,
            image_backbone=backbone_info["name"],
            image_backbone_config=backbone_info.get("config"),
            text_encoder_name=text_info.get("name", ""),
            preprocessing=preprocessing,
            max_text_tokens=manifest.get("max_text_tokens"),
        )
        module.eval()
        return model.to(device)
