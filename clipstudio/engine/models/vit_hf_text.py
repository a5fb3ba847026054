"""A CLIP with a transformers ViT image tower and a Hugging Face text encoder (BiomedCLIP, QuiltNet-B-16-PMB).

The open_clip "timm ViT + HF text tower" family: class token of a ViT -> linear projection; text
encoder -> CLS token of the last hidden state (or the mean over real tokens, or BERT's pooler
output) -> linear or MLP projection (Linear, GELU, Linear; no biases), as open_clip builds them.

Saved as ``model.safetensors`` (all weights) + ``clipstudio_model.json`` + ``image_tower/config.json``
+ ``text_encoder/`` (the text encoder's config and tokenizer), so ``load`` works offline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.fingerprint import tokenizer_digest
from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing
from clipstudio.engine.models.manifest import FORMAT_VERSION, MANIFEST_NAME, read_manifest
from clipstudio.engine.models.projected_towers import (
    TEXT_DIR_NAME,
    WEIGHTS_NAME,
    ProjectedTowersModel,
    load_weights,
)

KIND = "vit_hf_text"
IMAGE_DIR_NAME = "image_tower"
TEXT_POOLINGS = ("cls", "mean", "pooler_output")
TEXT_PROJECTIONS = ("mlp", "linear", "none")


def text_projection(kind: str, width: int, embed_dim: int) -> nn.Module:
    """open_clip's HF text projection: ``mlp`` (hidden (width+embed_dim)//2, GELU), ``linear``, or ``none``."""
    if kind == "mlp":
        hidden = (width + embed_dim) // 2
        return nn.Sequential(
            nn.Linear(width, hidden, bias=False), nn.GELU(), nn.Linear(hidden, embed_dim, bias=False)
        )
    if kind == "linear":
        return nn.Linear(width, embed_dim, bias=False)
    if kind == "none" and width == embed_dim:
        return nn.Identity()
    raise ModelError(
        f"Unsupported text projection {kind!r} ({width} -> {embed_dim}); expected {TEXT_PROJECTIONS}."
    )


class ViTHFTextModule(nn.Module):
    """ViT class token -> linear projection; text encoder -> pooling -> projection; log temperature."""

    def __init__(
        self,
        image_tower: nn.Module,
        text_tower: nn.Module,
        embed_dim: int,
        *,
        image_projection_bias: bool = False,
        text_projection_kind: str = "mlp",
        text_pooling: str = "cls",
    ) -> None:
        super().__init__()
        if text_pooling not in TEXT_POOLINGS:
            raise ModelError(f"Unsupported text pooling {text_pooling!r}; expected one of {TEXT_POOLINGS}.")
        self.image_tower = image_tower
        self.image_projection = nn.Linear(
            image_tower.config.hidden_size, embed_dim, bias=image_projection_bias
        )
        self.text_tower = text_tower
        self.text_projection = text_projection(text_projection_kind, text_tower.config.hidden_size, embed_dim)
        # Stored as a log, like CLIP; the checkpoint's value replaces this.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.text_projection_kind = text_projection_kind
        self.text_pooling = text_pooling

    def image_trunk(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower's output before the projection: the class token's last hidden state."""
        return self.image_tower(pixel_values=pixel_values).last_hidden_state[:, 0]

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.image_projection(self.image_trunk(pixel_values))

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.text_tower(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        if self.text_pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        elif self.text_pooling == "pooler_output":
            pooled = out.pooler_output
        else:
            mask = tokens["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
        return self.text_projection(pooled)


def build_towers(vit_config: Any, text_config: Any, text_pooling: str) -> tuple[nn.Module, nn.Module]:
    """Randomly initialised towers of the given configs (weights are loaded afterwards)."""
    from transformers import AutoModel, ViTModel

    image_tower = ViTModel(vit_config, add_pooling_layer=False)
    try:
        text_tower = AutoModel.from_config(text_config, add_pooling_layer=text_pooling == "pooler_output")
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"Unsupported text encoder type {getattr(text_config, 'model_type', '?')!r} ({exc})."
        ) from None
    return image_tower, text_tower


class ViTHFTextModel(ProjectedTowersModel):
    """``ImageTextModel`` over a ``ViTHFTextModule`` plus its tokenizer and image preprocessing."""

    kind = KIND
    TOKEN_KEYS = ("input_ids", "attention_mask")

    def __init__(
        self,
        module: ViTHFTextModule,
        tokenizer: Any,
        preprocessing: CLIPProcessorPreprocessing,
        *,
        max_text_tokens: int,
        source: str = "",
    ) -> None:
        limit = getattr(module.text_tower.config, "max_position_embeddings", None) or max_text_tokens
        super().__init__(module, tokenizer, preprocessing, min(int(max_text_tokens), int(limit)))
        self.source = source

    def _fingerprint_extra(self) -> dict[str, Any]:
        manifest = {k: v for k, v in self._manifest().items() if k != "source"}
        return {"manifest": manifest, "tokenizer": tokenizer_digest(self.tokenizer)}

    # --- save / load -----------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "embed_dim": self.embed_dim,
            "image_tower": {
                "folder": IMAGE_DIR_NAME,
                "projection_bias": self.module.image_projection.bias is not None,
            },
            "text_encoder": {
                "folder": TEXT_DIR_NAME,
                "pooling": self.module.text_pooling,
                "projection": self.module.text_projection_kind,
            },
            "max_text_tokens": self.max_text_tokens,
            "preprocessing": self.preprocessing.to_dict(),
            "source": self.source,
        }

    def save(self, folder: str | Path) -> Path:
        configs = {IMAGE_DIR_NAME: self.module.image_tower.config, TEXT_DIR_NAME: self.module.text_tower.config}
        return self._save_folder(folder, configs)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> ViTHFTextModel:
        from transformers import AutoConfig, AutoTokenizer, ViTConfig

        folder = Path(folder)
        manifest = read_manifest(folder)
        try:
            image_info, text_info = manifest["image_tower"], manifest["text_encoder"]
            image_dir = folder / image_info.get("folder", IMAGE_DIR_NAME)
            text_dir = folder / text_info.get("folder", TEXT_DIR_NAME)
            preprocessing = CLIPProcessorPreprocessing.from_dict(manifest["preprocessing"])
            embed_dim = int(manifest["embed_dim"])
            max_text_tokens = int(manifest["max_text_tokens"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{folder / MANIFEST_NAME} is incomplete or invalid ({exc!r}).") from None
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelError(f"{str(folder)!r} has no {WEIGHTS_NAME}; expected a saved CLIP Studio model.")
        try:
            vit_config = ViTConfig.from_pretrained(image_dir, local_files_only=True)
            text_config = AutoConfig.from_pretrained(text_dir, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(text_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"Can't rebuild the towers from {str(folder)!r}: {exc}") from None
        pooling = text_info.get("pooling", "cls")
        image_tower, text_tower = build_towers(vit_config, text_config, pooling)
        module = ViTHFTextModule(
            image_tower,
            text_tower,
            embed_dim,
            image_projection_bias=bool(image_info.get("projection_bias", False)),
            text_projection_kind=text_info.get("projection", "mlp"),
            text_pooling=pooling,
        )
        load_weights(module, folder)
        module.eval()
        model = cls(
            module,
            tokenizer,
            preprocessing,
            max_text_tokens=max_text_tokens,
            source=manifest.get("source", ""),
        )
        return model.to(device)
