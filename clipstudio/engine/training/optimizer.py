"""Optimisation settings shared by every training method: AdamW groups, the LR schedule, mixed precision.

AdamW (betas 0.9/0.98, eps 1e-6, CLIP's values) with weight decay only on matrices: biases,
norm weights (every parameter with fewer than 2 dimensions) and the temperature are not decayed.
The learning rate warms up linearly for ``warmup_steps`` optimizer steps (capped at a fifth of the
run, so a short run on a small clinical dataset still reaches its peak rate), then follows a cosine
down to 0 at the last step. It is a pure function of the step, so a resumed run needs no
scheduler state beyond the step count.

The update runs as torch's fused AdamW kernel where the parameters' device has one (CPU, CUDA):
one pass over parameters, gradients and moments instead of about ten, which matters because the
step over a CLIP-sized model is memory-bound. Elsewhere it is the plain per-parameter loop.

Layer-wise learning-rate decay (``layer_decay`` below 1, as in BEiT's and ELECTRA's fine-tuning): heads,
projections and the temperature train at the full rate; within each tower the last layer trains at
``layer_decay`` times it and each layer below at ``layer_decay`` times the one above, down to the
embeddings, so the general early features move least.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from clipstudio.engine.runtime.precision import bf16_check

BETAS = (0.9, 0.98)
EPS = 1e-6


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (ndim < 2) and the temperature keep their scale: decaying them only hurts."""
    return param.ndim < 2 or "logit_scale" in name


# A numbered layer of a tower: HF encoders (`encoder.layers.3.`, BERT's `encoder.layer.3.`), timm and
# EfficientNet blocks (`blocks.3.`, `_blocks.3.`). peft's `base_model.model.` prefix is part of the tower.
_NUMBERED = re.compile(r"^(?P<tower>(?:.*\.)?_?(?:layers?|blocks?))\.(?P<index>\d+)\.")
_INPUT_SIDE = ("embed", "stem", "pre_layrnorm", "pre_layernorm")  # below the first layer: depth 0
_PEFT_PREFIX = "base_model.model."


def layer_scales(names: Iterable[str], decay: float) -> dict[str, float]:
    """Each parameter's learning-rate multiplier under layer-wise decay (1.0 everywhere when ``decay`` is 1).

    A tower is a run of numbered layers (``...layers.0`` to ``...layers.L-1``). Layer i trains at
    ``decay ** (L - i)``, the tower's input side (embeddings, stem) at ``decay ** (L + 1)``, and the rest
    of the tower (final norm, pooler) at 1, as do parameters outside every tower (projections, temperature).
    """
    names = list(names)
    if decay == 1.0:
        return dict.fromkeys(names, 1.0)
    depth: dict[str, tuple[str, int]] = {}
    layers: dict[str, int] = {}
    for name in names:
        match = _NUMBERED.match(name)
        if match:
            tower, index = match["tower"], int(match["index"])
            depth[name] = (tower, index + 1)
            layers[tower] = max(layers.get(tower, 0), index + 1)
    roots = {_root(tower): tower for tower in layers}
    scales = {}
    for name in names:
        if name in depth:
            tower, d = depth[name]
        elif (tower := roots.get(_root(name))) is not None:
            d = 0 if any(key in name for key in _INPUT_SIDE) else layers[tower] + 1
        else:
            scales[name] = 1.0
            continue
        scales[name] = decay ** max(0, layers[tower] + 1 - d)
    return scales


def _root(name: str) -> str:
    """The tower's top module: ``vision_model`` of ``vision_model.encoder.layers``, past peft's prefix."""
    return name.removeprefix(_PEFT_PREFIX).split(".", 1)[0]


def make_optimizer(
    named_params: list[tuple[str, torch.nn.Parameter]], *, lr: float, weight_decay: float, layer_decay: float = 1.0
) -> torch.optim.AdamW:
    """AdamW over the given (trainable) parameters, grouped by decayed / not decayed and, with
    ``layer_decay`` below 1, by learning-rate multiplier (``lr_scale`` in each group; see ``set_lr``)."""
    scales = layer_scales((n for n, _ in named_params), layer_decay)
    grouped: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for name, param in named_params:
        grouped.setdefault((not no_decay(name, param), scales[name]), []).append(param)
    if not grouped:
        raise ValueError("no trainable parameters")
    groups = [
        {"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr_scale": scale, "lr": lr * scale}
        for (decayed, scale), params in sorted(grouped.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))
    ]
    params = [p for _, p in named_params]
    if fused_supported(params):
        return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, fused=True)
    # Never foreach: its default differs by device, and a resumed run must repeat the same arithmetic.
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, foreach=False)


_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW takes these parameters: all on one CPU or CUDA device, all floating point.

    A checkpoint's optimizer state keeps the setting it was saved with (``load_state_dict`` restores
    the groups' ``fused`` flag), so a run resumes with the kernel it started with.
    """
    devices = {p.device for p in params}
    return (
        len(devices) == 1
        and next(iter(devices)).type in _FUSED_DEVICES
        and all(p.dtype in _FUSED_DTYPES for p in params)
    )


def cosine_lr(step: int, *, base_lr: float, total_steps: int, warmup_steps: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based): linear warm-up, then cosine to 0."""
    warmup_steps = min(warmup_steps, total_steps // 5)
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's rate, times each group's layer-wise multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


@dataclass(frozen=True)
class AmpPolicy:
    """How to run the forward pass: autocast dtype (None: full fp32), whether to scale the loss, and why."""

    device_type: str
    dtype: torch.dtype | None
    use_scaler: bool
    reason: str = ""

    @property
    def name(self) -> str:
        if self.dtype is None:
            return "fp32"
        return "fp16+scaler" if self.use_scaler else str(self.dtype).removeprefix("torch.")

    @property
    def description(self) -> str:
        """For the user's log: "bf16 mixed precision — this GPU computes bf16 natively"."""
        if self.dtype is None:
            words = "full precision (fp32)"
        else:
            words = f"{'fp16 with loss scaling' if self.use_scaler else 'bf16'} mixed precision"
        return f"{words} — {self.reason}" if self.reason else words

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )


def amp_policy(device: torch.device, enabled: bool) -> AmpPolicy:
    """bf16 where the device computes it natively, fp16 with a GradScaler on older CUDA GPUs, else fp32.

    On a CPU without native bf16 units, bf16 autocast is 10-60x slower than fp32 (see
    ``runtime.precision``), so mixed precision falls back to fp32 there and says so. Master weights
    stay fp32 in every case; autocast only lowers the precision of the matmuls.
    """
    if not enabled:
        return AmpPolicy(device.type, None, False, "mixed precision is off")
    check = bf16_check(device)
    if check.fast:
        return AmpPolicy(device.type, torch.bfloat16, False, check.reason)
    if device.type == "cuda":
        return AmpPolicy("cuda", torch.float16, True, "this GPU has no native bf16")
    return AmpPolicy(device.type, None, False, check.reason)
