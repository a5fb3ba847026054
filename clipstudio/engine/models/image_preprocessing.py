"""PIL + numpy image preprocessing (resize shorter side, centre crop, normalise); no torchvision."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

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
# Where a centre crop starts when the margin (resized side - crop) is odd. "floor": margin // 2, as
# transformers' image processors (image_transforms.center_crop) and CLIP Studio's own models do.
# "round": torchvision's CenterCrop, which open_clip models (BiomedCLIP, QuiltNet) were trained with.
CROP_OFFSETS = ("floor", "round")


def crop_start(margin: int, offset: str = "floor") -> int:
    """First kept pixel of a centre crop that leaves ``margin`` pixels out along one side."""
    if offset == "round":
        # torchvision.transforms.functional.center_crop: int(round((image_height - crop_height) / 2.0)),
        # Python's round (half to even): a margin of 3 starts at 2, a margin of 5 at 2, of 7 at 4.
        return int(round(margin / 2.0))
    return margin // 2


@dataclass(frozen=True)
class ImageInputSpec:
    """The square pixel input a model takes: ``size`` x ``size`` RGB, normalised as (x / 255 - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def normalise_uint8(
    crops: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], *, rescale: float = 1 / 255
) -> torch.Tensor:
    """(N, H, W, 3) uint8 crops -> (N, 3, H, W) float32 ``(x * rescale - mean) / std``, channels first.

    Through one 256-entry table per channel, filled with the float32 arithmetic of
    ``ImagePreprocessing`` and transformers' image processors, so the pixels are bit-identical
    to theirs while each byte is read once and each float written once.
    """
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 crops, got {crops.shape} {crops.dtype}")
    levels = (np.arange(256, dtype=np.float64) * rescale).astype(np.float32)
    mean32, std32 = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    out = np.empty((crops.shape[0], 3, *crops.shape[1:3]), dtype=np.float32)
    for c in range(3):
        table = (levels - mean32[c]) / std32[c]
        np.take(table, crops[..., c], out=out[:, c])
    return torch.from_numpy(out)


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize the shorter side to ``resize_size`` (default ``image_size``), centre-crop ``image_size``, normalise."""

    image_size: int = 224
    resize_size: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bicubic"
    crop_offset: str = "floor"  # one of CROP_OFFSETS
    # How the longer side's new length is rounded: CLIP Studio's own models round it, transformers' CLIP
    # processors and torchvision's Resize truncate it ("floor").
    longer_side: ClassVar[str] = "round"

    def __post_init__(self) -> None:
        if self.resample not in _RESAMPLE:
            raise ModelError(f"Unknown resample mode {self.resample!r}; expected one of {sorted(_RESAMPLE)}.")
        if self.crop_offset not in CROP_OFFSETS:
            raise ModelError(f"Unknown crop offset {self.crop_offset!r}; expected one of {list(CROP_OFFSETS)}.")
        if self.image_size < 1 or len(self.mean) != 3 or len(self.std) != 3:
            raise ModelError(
                f"Invalid image preprocessing: size {self.image_size}, mean {self.mean}, std {self.std}."
            )

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        size = self.image_size
        if not images:
            return torch.zeros(0, 3, size, size)
        return self.normalise(np.stack([self.crop(im) for im in images]))

    def crop(self, image: Image.Image) -> np.ndarray:
        """The resized, centre-cropped ``image_size`` square as (H, W, 3) uint8: the per-image half of the work."""
        image = image.convert("RGB")
        size = self.image_size
        w, h = image.size
        new_w, new_h = self._resized_size(w, h)
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), _RESAMPLE[self.resample])
        left, top = crop_start(new_w - size, self.crop_offset), crop_start(new_h - size, self.crop_offset)
        if (new_w, new_h) != (size, size):
            image = image.crop((left, top, left + size, top + size))
        return np.asarray(image)

    def crop_settings(self) -> dict[str, Any]:
        """What decides ``crop``'s pixels (not the normalisation): equal settings give equal crops."""
        return {
            "image_size": self.image_size,
            "resize_size": self.resize_size or self.image_size,
            "longer_side": self.longer_side,
            "resample": self.resample,
            "crop_offset": self.crop_offset,
        }

    def normalise(self, crops: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 crops -> (N, 3, H, W) float32 ``(x / 255 - mean) / std``, for a whole batch at once."""
        return normalise_uint8(crops, self.mean, self.std)

    def _resized_size(self, w: int, h: int) -> tuple[int, int]:
        size = self.image_size
        scale = (self.resize_size or size) / min(w, h)
        return max(size, round(w * scale)), max(size, round(h * scale))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        if self.crop_offset == "floor":
            # Left out at its default: models saved before the setting existed keep their manifest and fingerprint.
            del d["crop_offset"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePreprocessing:
        known = {"image_size", "resize_size", "mean", "std", "resample", "crop_offset"}
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"Unknown image preprocessing keys {sorted(unknown)}; expected {sorted(known)}.")
        kw = dict(d)
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(v) for v in kw[key])
        return cls(**kw)


_PIL_RESAMPLE_NAMES = {int(mode): name for name, mode in _RESAMPLE.items()}


@dataclass(frozen=True)
class CLIPProcessorPreprocessing(ImagePreprocessing):
    """What a transformers CLIP image processor computes, as ``ImagePreprocessing`` (its longer side is truncated, not rounded)."""

    longer_side: ClassVar[str] = "floor"

    def _resized_size(self, w: int, h: int) -> tuple[int, int]:
        short = self.resize_size or self.image_size
        # transformers' get_resize_output_image_size(default_to_square=False), operation for operation.
        if w <= h:
            return short, int(short * h / w)
        return int(short * w / h), short

    @classmethod
    def from_processor(cls, processor: Any, *, crop_offset: str = "floor") -> CLIPProcessorPreprocessing | None:
        """The equivalent of ``processor`` (shortest-edge resize, square centre crop, /255, mean/std), else None.

        ``crop_offset="round"``: the same but cropped as torchvision does, for open_clip models whose
        processor was written by the converter (transformers' own processors always floor).
        """

        def box(name: str) -> dict[str, int]:
            value = getattr(processor, name, None) or {}
            return {k: int(v) for k, v in dict(value).items() if v is not None}

        size, crop = box("size"), box("crop_size")
        resample = getattr(processor, "resample", None)
        plain = (
            getattr(processor, "do_resize", False)
            and getattr(processor, "do_center_crop", False)
            and getattr(processor, "do_rescale", False)
            and getattr(processor, "do_normalize", False)
            and not getattr(processor, "do_pad", False)
            and abs(float(getattr(processor, "rescale_factor", 0.0)) - 1 / 255) < 1e-12
            and set(size) == {"shortest_edge"}
            and set(crop) == {"height", "width"}
            and crop["height"] == crop["width"] <= size["shortest_edge"]  # a larger crop would be padded
            and isinstance(resample, int)
            and int(resample) in _PIL_RESAMPLE_NAMES
        )
        mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
        if not (plain and _three_floats(mean) and _three_floats(std)):
            return None  # e.g. one float for all channels: rare enough to leave to the processor
        return cls(
            image_size=crop["height"],
            resize_size=size["shortest_edge"],
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            resample=_PIL_RESAMPLE_NAMES[int(resample)],
            crop_offset=crop_offset,
        )


def _three_floats(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3
