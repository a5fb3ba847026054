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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from clipstudio.engine.runtime.precision import bf16_check

BETAS = (0.9, 0.98)
EPS = 1e-6


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (ndim < 2) and the temperature keep their scale: decaying them only hurts."""
    return param.ndim < 2 or "logit_scale" in name


def make_optimizer(
    named_params: list[tuple[str, torch.nn.Parameter]], *, lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over the given (trainable) parameters, in two groups: decayed and not decayed."""
    decay = [p for n, p in named_params if not no_decay(n, p)]
    keep = [p for n, p in named_params if no_decay(n, p)]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0})
    if not groups:
        raise ValueError("no trainable parameters")
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
    for group in optimizer.param_groups:
        group["lr"] = lr


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
