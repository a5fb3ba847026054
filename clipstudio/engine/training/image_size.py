"""The size training images are resized to: the config's, the model's own, or a smaller one for small images on the CPU.

Small images (MedMNIST's are 28 px) hold no more detail at 224 px than at 112 px, and a CNN's
arithmetic grows with the pixel count: on the CPU the built-in model's full fine-tune ran 2-3x
faster at 112 px with accuracy as good (docs/PERFORMANCE.md, "Image size"). A GPU keeps the
model's own size; so does a ViT, whose position embeddings are sized for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clipstudio.engine.data.images import image_size
from clipstudio.engine.errors import ImageError

CPU_SMALL_IMAGE_SIZE = 112  # px: what small images train at on the CPU
SMALL_IMAGE_SIDE = 64  # px: images whose median shorter side is at most this count as small
SIDE_SAMPLE = 32  # training images whose headers are read to measure their size
FIXED_SIZE_KINDS = ("hf_clip", "vit_hf_text")  # ViTs: position embeddings for one input size only


@dataclass(frozen=True)
class ImageSizeChoice:
    """The training image size and, when it was chosen here, why (plain words for the log)."""

    size: int
    automatic: bool = False  # chosen for small images on the CPU, not by the config or the model
    note: str = ""


def median_short_side(paths: Sequence[str | Path], sample: int = SIDE_SAMPLE) -> int | None:
    """Median shorter side in pixels of up to ``sample`` evenly spread images (headers only); None if none read."""
    if not paths:
        return None
    step = max(1, len(paths) // sample)
    sides = []
    for path in list(paths)[::step][:sample]:
        try:
            sides.append(min(image_size(path)))
        except ImageError:
            continue  # unreadable images are reported when the images are decoded
    return int(statistics.median(sides)) if sides else None


def choose_image_size(
    requested: int | None,
    native: int,
    *,
    device: torch.device,
    resizable: bool,
    source_side: int | None,
) -> ImageSizeChoice:
    """``requested`` if set; else on the CPU, for small images and a model that takes any size, the smaller size;
    else the model's own (``native``)."""
    if requested:
        return ImageSizeChoice(requested)
    small = source_side is not None and source_side <= SMALL_IMAGE_SIDE
    if device.type != "cpu" or not resizable or not small or native <= CPU_SMALL_IMAGE_SIZE:
        return ImageSizeChoice(native)
    size = CPU_SMALL_IMAGE_SIZE
    note = (
        f"Training at {size} px instead of the model's {native} px: the images are small ({source_side} px across), "
        f"and on the CPU {size} px trains about 3 times faster, with similar accuracy in our tests. "
        "The trained model keeps this size; to choose another, set Image size (--img-size)."
    )
    return ImageSizeChoice(size, automatic=True, note=note)


__all__ = [
    "CPU_SMALL_IMAGE_SIZE",
    "FIXED_SIZE_KINDS",
    "SMALL_IMAGE_SIDE",
    "ImageSizeChoice",
    "choose_image_size",
    "median_short_side",
]
