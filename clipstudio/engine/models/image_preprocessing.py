"""PIL + numpy image preprocessing (resize shorter side, centre crop, normalise); no torchvision."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from clipstudio.engine.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF EfficientNet-Lite checkpoints expect (x - 127) / 128 on 0..255 pixels, i.e. roughly [-1, 1].
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class ImageInputSpec:
    """The square pixel input a model takes: ``size`` x ``size`` RGB, normalised as (x / 255 - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def resize_center_crop(image: Image.Image, size: int, *, resample: str = "bicubic") -> Image.Image:
    """Shorter side resized to ``size``, then the centre ``size`` x ``size`` RGB square, as models do."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), _RESAMPLE[resample])
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize the shorter side to ``resize_size`` (default ``image_size``), centre-crop ``image_size``, normalise."""

    image_size: int = 224
    resize_size: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resample not in _RESAMPLE:
            raise ModelError(f"Unknown resample mode {self.resample!r}; expected one of {sorted(_RESAMPLE)}.")
        if self.image_size < 1 or len(self.mean) != 3 or len(self.std) != 3:
            raise ModelError(
                f"Invalid image preprocessing: size {self.image_size}, mean {self.mean}, std {self.std}."
            )

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        size = self.image_size
        if not images:
            return torch.zeros(0, 3, size, size)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        batch = np.stack([(self._crop(im) - mean) / std for im in images])
        return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))

    def _crop(self, image: Image.Image) -> np.ndarray:
        image = image.convert("RGB")
        size = self.image_size
        short = self.resize_size or size
        w, h = image.size
        scale = short / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), _RESAMPLE[self.resample])
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image, dtype=np.float32) / 255.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePreprocessing:
        known = {"image_size", "resize_size", "mean", "std", "resample"}
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"Unknown image preprocessing keys {sorted(unknown)}; expected {sorted(known)}.")
        kw = dict(d)
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(v) for v in kw[key])
        return cls(**kw)
