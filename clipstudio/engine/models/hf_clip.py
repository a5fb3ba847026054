"""Hugging Face CLIP (openai/clip-*, vinid/plip, ...) behind the ``ImageTextModel`` interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.fingerprint import tokenizer_digest
from clipstudio.engine.models.frozen_files import FrozenFiles
from clipstudio.engine.models.image_preprocessing import (
    CROP_OFFSETS,
    CLIPProcessorPreprocessing,
    ImageInputSpec,
)
from clipstudio.engine.models.manifest import FORMAT_VERSION, MANIFEST_NAME, read_manifest
from clipstudio.engine.models.torch_model import TorchImageTextModel
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.safetensors_io import save_safetensors

SAFETENSORS_NAMES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_safetensors_folder(folder: Path) -> None:
    """Refuse a HF model folder whose weights are only in pickle (.bin) form: we never unpickle them."""
    if any((folder / name).is_file() for name in SAFETENSORS_NAMES):
        return
    if any((folder / name).is_file() for name in PICKLE_NAMES):
        raise ModelError(
            f"{str(folder)!r} has only pytorch_model.bin weights, which CLIP Studio won't load because "
            "unpickling can run code; convert them to model.safetensors first."
        )
    raise ModelError(f"{str(folder)!r} has a config.json but no model.safetensors weights.")


class HFClipModel(TorchImageTextModel):
    """transformers ``CLIPModel`` + its tokenizer + the PIL-based ``CLIPImageProcessorPil`` (no torchvision).

    ``crop_offset="round"`` marks a standard open_clip CLIP (QuiltNet-B-32, ...): it was trained with
    torchvision's CenterCrop, which rounds an odd margin's half where transformers' processor floors it,
    so its images are preprocessed by ``CLIPProcessorPreprocessing`` with the processor's settings and
    the round offset. Hugging Face CLIPs ("floor") keep transformers' own processor.
    """

    kind = "hf_clip"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        *,
        source: str = "",
        crop_offset: str = "floor",
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.source = source
        if crop_offset not in CROP_OFFSETS:
            raise ModelError(f"Unknown crop offset {crop_offset!r}; expected one of {list(CROP_OFFSETS)}.")
        self.crop_offset = crop_offset
        if crop_offset != "floor" and self.image_preprocessing() is None:
            raise ModelError(
                f"{source or 'This CLIP model'}: its image processor does more than resize, crop and normalise, "
                "so it can't crop as open_clip does."
            )
        # Saved once per run, not at every checkpoint (see FrozenFiles); re-saved if either is swapped
        # or the processor's settings change.
        self._frozen_files = FrozenFiles(
            self._save_tokenizer_and_processor,
            key=lambda: (id(self.tokenizer), id(self.image_processor), self.image_processor.to_json_string()),
        )

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu", *, source: str = "") -> HFClipModel:
        """Load a HF CLIP folder (config.json with model_type "clip", safetensors weights, tokenizer, preprocessor)."""
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        folder = Path(folder)
        check_safetensors_folder(folder)
        # A CLIP Studio folder of an open_clip model records its crop; a Hugging Face folder has no manifest.
        manifest = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else {}
        if not (folder / "preprocessor_config.json").is_file():
            raise ModelError(
                f"{str(folder)!r} has no preprocessor_config.json (the CLIP image preprocessing)."
            )
        try:
            # SDPA attention (fused kernels on CPU and GPU); transformers 5 picks it by default, but
            # an older config or version could otherwise fall back to the slower eager attention.
            model, info = CLIPModel.from_pretrained(
                folder,
                use_safetensors=True,
                local_files_only=True,
                output_loading_info=True,
                attn_implementation="sdpa",
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            # The PIL backend: the default CLIPImageProcessor in transformers 5 needs torchvision.
            processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
        except SafetensorError as exc:  # e.g. a pickle renamed to model.safetensors: never unpickled
            raise ModelError(
                f"{str(folder / 'model.safetensors')!r} is not a readable safetensors file ({exc})."
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"Can't load the CLIP model in {str(folder)!r}: {exc}") from None
        if info.get("missing_keys"):
            # Randomly initialised weights would make embeddings (and fingerprints) differ run to run.
            raise ModelError(f"{str(folder)!r} lacks weights for {sorted(info['missing_keys'])[:5]}.")
        model.eval()
        crop_offset = str(manifest.get("crop_offset", "floor"))
        loaded = cls(model, tokenizer, processor, source=source or str(folder), crop_offset=crop_offset)
        return loaded.to(device)

    # --- properties ------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def max_text_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def torch_module(self) -> torch.nn.Module:
        return self.model

    # --- encoding --------------------------------------------------------------------------------
    def image_preprocessing(self) -> CLIPProcessorPreprocessing | None:
        return CLIPProcessorPreprocessing.from_processor(self.image_processor, crop_offset=self.crop_offset)

    def preprocess(self, images: list) -> torch.Tensor:
        if self.crop_offset != "floor":
            return self.image_preprocessing()(images)
        if not images:
            crop = self.image_processor.crop_size
            return torch.zeros(0, 3, crop["height"], crop["width"])
        rgb = [im.convert("RGB") for im in images]
        return self.image_processor(images=rgb, return_tensors="pt")["pixel_values"].float()

    def image_input_spec(self) -> ImageInputSpec:
        proc = self.image_processor
        box = proc.crop_size if getattr(proc, "do_center_crop", True) else proc.size
        box = {k: v for k, v in dict(box).items() if v is not None}  # a dict, or a SizeDict in some versions
        if "height" in box and "width" in box:
            height, width = int(box["height"]), int(box["width"])
        else:
            height = width = int(box["shortest_edge"])
        if height != width:
            raise ModelError(
                f"This CLIP model takes {width}x{height} images; only square inputs are supported."
            )
        return ImageInputSpec(
            size=height,
            mean=tuple(float(v) for v in proc.image_mean),
            std=tuple(float(v) for v in proc.image_std),
        )

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        )
        return {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask") if k in batch}

    def count_tokens(self, texts: list[str]) -> list[int]:
        ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixel_values.to(self.model.dtype))
        return _features(out)

    # get_image_features is visual_projection(vision_model(x).pooler_output): the trunk and its head.
    splits_image_tower = True

    def forward_image_trunk(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.to(self.device, self.model.dtype)
        return self.model.vision_model(pixel_values=pixels, return_dict=True).pooler_output

    def forward_images_from_trunk(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model.visual_projection(features.to(self.device)).float(), dim=-1)

    def _text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return _features(self.model.get_text_features(**tokens))

    def _log_logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale

    def _fingerprint_extra(self) -> dict[str, Any]:
        extra = {
            "preprocessing": self.image_processor.to_dict(),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "max_text_tokens": self.max_text_tokens,
        }
        if self.crop_offset != "floor":  # absent at the default: Hugging Face CLIPs keep their fingerprints
            extra["crop_offset"] = self.crop_offset
        return extra

    # --- save ------------------------------------------------------------------------------------
    def _save_tokenizer_and_processor(self, folder: str) -> None:
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # What save_pretrained writes for CLIP (byte for byte: config.json + model.safetensors),
        # but with a writer that lets the GUI thread run during a checkpoint's large write.
        self.model.config.save_pretrained(folder)
        save_safetensors(self.model.state_dict(), folder / "model.safetensors", metadata={"format": "pt"})
        self._frozen_files.write(folder)
        manifest = {"kind": "hf_clip", "format_version": FORMAT_VERSION, "source": self.source}
        if self.crop_offset != "floor":
            manifest["crop_offset"] = self.crop_offset
        atomic_write_json(folder / MANIFEST_NAME, manifest)  # last: marks the folder complete
        return folder


def _features(out: Any) -> torch.Tensor:
    """transformers 5 returns a ModelOutput (projected features in ``pooler_output``); 4.x a tensor."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output
