"""``open_clip_config.json``: which open_clip architectures CLIP Studio reads, and how (old and new spellings).

Supported: standard open_clip ViT CLIPs and timm ViT + Hugging Face text tower models. Anything else
(CoCa, SigLIP, ResNet or ConvNeXt towers, attentional poolers, custom attention blocks) is a
one-line ModelError naming what is supported, raised before any weights are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clipstudio.engine.errors import ModelError
from clipstudio.engine.model_catalogue import OPEN_CLIP_CONFIG
from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing
from clipstudio.engine.models.vit_hf_text import KIND as VIT_HF_TEXT

CONFIG_NAME = OPEN_CLIP_CONFIG  # the one spelling, shared with the model catalogue
CLIP_VIT = "clip_vit"  # family of standard open_clip ViT CLIPs; VIT_HF_TEXT: timm ViT + HF text tower
SUPPORTED = (
    "open_clip ViT CLIPs (e.g. ViT-B/32, B/16, L/14, with or without QuickGELU) and timm ViT + Hugging Face "
    "text tower models (e.g. BiomedCLIP, QuiltNet-B-16-PMB)"
)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HF_POOLERS = {"cls_last_hidden_state_pooler": "cls", "mean_pooler": "mean", "cls_pooler": "pooler_output"}

# open_clip options (in vision_cfg / text_cfg) whose non-default values transformers' towers can't express.
_CLIP_VISION_DEFAULTS = {
    "ls_init_value": None, "attentional_pool": False, "no_ln_pre": False, "pos_embed_type": "learnable",
    "final_ln_after_pool": False, "pool_type": "tok", "act_kwargs": None, "norm_kwargs": None,
    "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False,
    "scale_attn": False, "scale_fc": False, "input_patchnorm": False,
}  # fmt: skip
_CLIP_TEXT_DEFAULTS = {
    "ls_init_value": None, "embed_cls": False, "no_causal_mask": False, "final_ln_after_pool": False,
    "pool_type": "argmax", "proj_bias": False, "proj_type": "linear", "act_kwargs": None, "norm_kwargs": None,
    "hf_tokenizer_name": None, "tokenizer_mode": None, "qk_norm": False, "scaled_cosine_attn": False,
    "scale_heads": False, "scale_attn_inner": False, "scale_attn": False, "scale_fc": False,
}  # fmt: skip


@dataclass(frozen=True)
class OpenClipConfig:
    """What CLIP Studio reads from ``open_clip_config.json`` (old and new option spellings)."""

    family: str  # CLIP_VIT | VIT_HF_TEXT
    embed_dim: int
    quick_gelu: bool
    context_length: int
    preprocessing: CLIPProcessorPreprocessing
    vision_cfg: dict[str, Any] = field(default_factory=dict)
    text_cfg: dict[str, Any] = field(default_factory=dict)
    text_repo: str = ""  # VIT_HF_TEXT: the text tower's repo id or folder
    tokenizer_repo: str = ""
    text_projection: str = "mlp"
    text_pooling: str = "cls"


def unsupported(where: str, what: str) -> ModelError:
    return ModelError(f"{where}: {what} is not supported; CLIP Studio reads {SUPPORTED}.")


def _non_defaults(cfg: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    ok = {"block_type": ("default", None)}
    bad = [k for k, v in defaults.items() if k in cfg and cfg[k] != v]
    bad += [k for k, allowed in ok.items() if k in cfg and cfg[k] not in allowed]
    return bad


def _preprocessing(raw: dict[str, Any], image_size: Any, where: str) -> CLIPProcessorPreprocessing:
    """open_clip's eval transform: bicubic (or bilinear) resize of the short side, centre crop, mean/std."""
    size = raw.get("size", image_size)
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise unsupported(where, f"a non-square image size {size}")
        size = size[0]
    if raw.get("resize_mode", "shortest") != "shortest":
        raise unsupported(where, f"resize_mode {raw['resize_mode']!r}")
    interpolation = raw.get("interpolation", "bicubic")
    if interpolation not in ("bicubic", "bilinear"):
        raise unsupported(where, f"interpolation {interpolation!r}")
    mean, std = raw.get("mean", OPENAI_MEAN), raw.get("std", OPENAI_STD)
    if isinstance(mean, (int, float)):
        mean = (mean,) * 3
    if isinstance(std, (int, float)):
        std = (std,) * 3
    # torchvision's Resize truncates the long side, as transformers' CLIP processor does; its CenterCrop
    # rounds an odd margin's half where transformers floors it.
    return CLIPProcessorPreprocessing(
        image_size=int(size),
        resize_size=int(size),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        resample=interpolation,
        crop_offset="round",
    )


def parse_open_clip_config(raw: Any, where: str) -> OpenClipConfig:
    """The supported architectures of an ``open_clip_config.json``; a one-line ModelError for the others."""
    model_cfg = raw.get("model_cfg") if isinstance(raw, dict) else None
    if not isinstance(model_cfg, dict):
        raise ModelError(f"{where} has no model_cfg; it is not an open_clip model config.")
    vision = dict(model_cfg.get("vision_cfg") or {})
    text = dict(model_cfg.get("text_cfg") or {})
    if "multimodal_cfg" in model_cfg:
        raise unsupported(where, "a CoCa model (multimodal text decoder)")
    if "init_logit_bias" in model_cfg:
        raise unsupported(where, "a SigLIP model (sigmoid loss with a logit bias)")
    if isinstance(vision.get("layers"), (list, tuple)):
        raise unsupported(where, "a ResNet image tower")
    if vision.get("attentional_pool") or text.get("attentional_pool"):
        raise unsupported(where, "an attentional pooler")
    try:
        embed_dim = int(model_cfg["embed_dim"])
        context_length = int(text.get("context_length", 77))
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{where} has no valid embed_dim / context_length.") from None
    preprocessing = _preprocessing(raw.get("preprocess_cfg") or {}, vision.get("image_size", 224), where)
    common = dict(
        embed_dim=embed_dim,
        quick_gelu=bool(model_cfg.get("quick_gelu", False)),
        context_length=context_length,
        preprocessing=preprocessing,
        vision_cfg=vision,
        text_cfg=text,
    )
    timm_name = vision.get("timm_model_name")
    if timm_name:
        if not str(timm_name).startswith("vit_"):
            raise unsupported(where, f"the timm image tower {timm_name!r}")
        if not text.get("hf_model_name"):
            raise unsupported(where, "a timm image tower with open_clip's own text tower")
        if vision.get("timm_pool", "avg") not in ("", "token"):
            raise unsupported(where, f"timm_pool {vision['timm_pool']!r} (only the class token)")
        if vision.get("timm_proj", "linear") != "linear":
            raise unsupported(where, f"timm_proj {vision['timm_proj']!r}")
        # open_clip renamed proj -> hf_proj_type and pooler_type -> hf_pooler_type; BiomedCLIP has the old ones.
        projection = text.get("hf_proj_type", text.get("proj", "mlp")) or "none"
        pooler = text.get("hf_pooler_type", text.get("pooler_type", "mean_pooler"))
        if pooler not in HF_POOLERS:
            raise unsupported(where, f"the text pooler {pooler!r}")
        if projection not in ("mlp", "linear", "none"):
            raise unsupported(where, f"the text projection {projection!r}")
        if text.get("tokenizer_mode"):
            raise unsupported(where, f"tokenizer_mode {text['tokenizer_mode']!r}")
        repo = str(text["hf_model_name"])
        return OpenClipConfig(
            family=VIT_HF_TEXT,
            text_repo=repo,
            tokenizer_repo=str(text.get("hf_tokenizer_name") or repo),
            text_projection=projection,
            text_pooling=HF_POOLERS[pooler],
            **common,
        )
    if text.get("hf_model_name"):
        raise unsupported(where, "open_clip's own image tower with a Hugging Face text tower")
    bad = _non_defaults(vision, _CLIP_VISION_DEFAULTS) + _non_defaults(text, _CLIP_TEXT_DEFAULTS)
    if bad:
        raise unsupported(where, f"the option(s) {', '.join(sorted(set(bad)))}")
    return OpenClipConfig(family=CLIP_VIT, **common)
