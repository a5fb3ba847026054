"""Image augmentation presets applied to whole uint8 batches in torch (no torchvision).

The presets, mildest first:

- ``"none"``: pixels as they are, only converted to float and normalised (also every eval batch).
- ``"minimal"``: random horizontal flip and a slight random resized crop (90-100 % of the area).
- ``"standard"``: random resized crop (70-100 % of the area, aspect 3:4 to 4:3), horizontal flip,
  rotation up to +-10 degrees, brightness and contrast jitter up to +-20 %.

Medical images: no preset flips vertically or changes hue, because orientation and stain colour
carry meaning. A horizontal flip swaps left and right; where laterality matters (e.g. which side
the heart is on in a chest X-ray) choose ``"none"``.

Crop, flip and rotation are one affine resampling per image (``affine_grid`` + ``grid_sample``
over the whole batch), with per-image parameters drawn from a seeded ``torch.Generator`` whose
state ``state_dict`` exposes, so a resumed run continues the same random stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.models.image_preprocessing import ImageInputSpec

PRESETS = ("none", "minimal", "standard")

_N_PARAMS = 8  # random numbers drawn per image, whatever the preset, so the stream layout is fixed
_GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's contrast adjustment uses


@dataclass(frozen=True)
class _Settings:
    scale: tuple[float, float]  # fraction of the image area kept by the random crop
    ratio: tuple[float, float]  # width / height of the crop
    flip: bool  # random horizontal flip
    rotation_deg: float  # rotation drawn from +-rotation_deg
    brightness: float  # factor drawn from 1 +- brightness
    contrast: float  # factor drawn from 1 +- contrast


_PRESET_SETTINGS: dict[str, _Settings | None] = {
    "none": None,
    "minimal": _Settings(
        scale=(0.9, 1.0), ratio=(1.0, 1.0), flip=True, rotation_deg=0.0, brightness=0.0, contrast=0.0
    ),
    "standard": _Settings(
        scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3), flip=True, rotation_deg=10.0, brightness=0.2, contrast=0.2
    ),
}


class BatchTransform:
    """uint8 ``(B, S, S, 3)`` batch -> float32 ``(B, 3, S, S)`` model input, augmented per ``preset`` when training.

    ``train=False`` never draws random numbers: it is the plain normalisation whatever the preset.
    ``seed=None`` seeds the generator from the operating system.
    """

    def __init__(self, preset: str, spec: ImageInputSpec, *, train: bool, seed: int | None = None):
        if preset not in PRESETS:
            raise ConfigError(f"Unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        self.preset = preset
        self.spec = spec
        self.train = train
        self._settings = _PRESET_SETTINGS[preset] if train else None
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def is_random(self) -> bool:
        """Whether calls draw from the generator (training with a preset other than "none")."""
        return self._settings is not None

    def __call__(
        self, batch: np.ndarray | torch.Tensor, *, within: tuple[int, np.ndarray] | None = None
    ) -> torch.Tensor:
        """The normalised (augmented) batch. ``within=(n, rows)``: ``batch`` is those rows of an
        n-image batch (one process's part of a multi-process batch) and draws as that whole batch would."""
        # In-place arithmetic throughout: allocating batch-sized temporaries costs more than the maths.
        x = _as_uint8_tensor(batch).permute(0, 3, 1, 2).contiguous().float().div_(255.0)  # (B, 3, H, W), 0..1
        if self._settings is not None and len(x):
            x = self._augment(x, self._settings, within)
        elif x.shape[-2:] != (self.spec.size, self.spec.size):
            x = F.interpolate(
                x, size=(self.spec.size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
            x.clamp_(0.0, 1.0)
        return x.sub_(self._mean.to(x.device)).div_(self._std.to(x.device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator state (a uint8 tensor), e.g. for a checkpoint's safetensors."""
        return {"generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue the random stream from a ``state_dict()``."""
        value = state.get("generator_state") if isinstance(state, dict) else None
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
            raise ValueError("augmentation state must hold a uint8 'generator_state' tensor")
        self.generator.set_state(value.detach().cpu().contiguous().clone())

    def __repr__(self) -> str:
        return f"BatchTransform({self.preset!r}, size={self.spec.size}, train={self.train})"

    # -------------------------------------------------------------------------------------------------
    def _augment(self, x: torch.Tensor, s: _Settings, within: tuple[int, np.ndarray] | None) -> torch.Tensor:
        n, size = x.shape[0], self.spec.size
        if within is None:
            u = torch.rand(n, _N_PARAMS, generator=self.generator, dtype=torch.float64).to(x.device)
        else:
            drawn = torch.rand(within[0], _N_PARAMS, generator=self.generator, dtype=torch.float64)
            u = drawn[torch.as_tensor(within[1], dtype=torch.long)].to(x.device)

        # Random resized crop: a box of `area` of the image with aspect `ratio`, anywhere inside it.
        area = s.scale[0] + (s.scale[1] - s.scale[0]) * u[:, 0]
        log_lo, log_hi = math.log(s.ratio[0]), math.log(s.ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
        half_w = torch.sqrt(area * ratio).clamp(max=1.0)  # half-extents in grid units (image = [-1, 1])
        half_h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (2 * u[:, 2] - 1) * (1 - half_w)
        cy = (2 * u[:, 3] - 1) * (1 - half_h)
        flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if s.flip else torch.ones_like(cx)
        angle = (2 * u[:, 5] - 1) * math.radians(s.rotation_deg)
        cos, sin = torch.cos(angle), torch.sin(angle)

        # Output grid -> input coordinates: rotate the (flipped, scaled) crop about its centre. Built
        # directly rather than with affine_grid, whose batched matmul is several times slower on CPU.
        a, b = (cos * half_w * flip), (-sin * half_h)
        c, d = (sin * half_w * flip), (cos * half_h)
        coords = ((torch.arange(size, dtype=torch.float64, device=x.device) * 2 + 1) / size - 1).to(x.dtype)
        gx, gy = coords.view(1, 1, size), coords.view(1, size, 1)

        def plane(p: torch.Tensor, q: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
            p, q, offset = (v.to(x.dtype).view(n, 1, 1) for v in (p, q, offset))
            return p * gx + q * gy + offset

        grid = torch.stack([plane(a, b, cx), plane(c, d, cy)], dim=-1)  # (n, size, size, 2)
        # Reflection rather than black fill: black wedges would mark which images were rotated.
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

        if s.brightness or s.contrast:
            brightness = (1 + (2 * u[:, 6] - 1) * s.brightness).to(x.dtype).view(n, 1, 1, 1)
            contrast = (1 + (2 * u[:, 7] - 1) * s.contrast).to(x.dtype).view(n, 1, 1, 1)
            x.mul_(brightness).clamp_(0.0, 1.0)
            weights = torch.tensor(_GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            grey_mean = (x.mean(dim=(2, 3), keepdim=True) * weights).sum(dim=1, keepdim=True)
            x.sub_(grey_mean).mul_(contrast).add_(grey_mean).clamp_(0.0, 1.0)
        return x


def _as_uint8_tensor(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        x = batch
    else:
        array = np.asarray(batch)
        if not array.flags.writeable:  # e.g. a slice of the read-only image cache memmap
            array = array.copy()
        x = torch.from_numpy(array)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (B, S, S, 3) batch, got {tuple(x.shape)} {x.dtype}")
    return x
