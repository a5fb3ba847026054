"""Whether bf16 pays off on a device: native bf16 units make it 2-4x faster than fp32; emulated, 10-60x slower.

CUDA answers from the GPU's compute capability. On the CPU oneDNN's own check says whether it has a
bf16 code path at all, but that path exists on CPUs that only emulate bf16 (AVX-512 without
AVX512_BF16/AMX), where a bf16 matmul is slower than fp32, and on AVX2-only CPUs (most laptops and
many workstations) oneDNN has none and torch falls back to reference kernels that are 20-60x slower
than fp32: a full fine-tune under bf16 autocast there crawls at ~1 image/s. So on the CPU the answer
comes from the hardware: on x86 CPUs bf16 is native with AVX512-BF16 or AMX units (torch's own CPU
feature checks); on other CPUs (ARM) it is measured once per process, a small matmul forward +
backward in both precisions, interleaved, and bf16 is used only when clearly faster. (A timing is
a poor test on x86: on a busy machine it swings 5x from one call to the next.)

``CLIPSTUDIO_CPU_BF16=1`` / ``0`` skips the measurement and forces the answer (e.g. to compare).
"""

from __future__ import annotations

import functools
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CPU_BF16_ENV = "CLIPSTUDIO_CPU_BF16"
MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this much to be used: a near-tie isn't worth the rounding
_X86 = ("x86_64", "amd64", "i686", "x86")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Bf16Check:
    """The verdict for one device: ``fast`` and a clause saying why, for the user's log."""

    fast: bool
    reason: str


def bf16_check(device: torch.device) -> Bf16Check:
    """Whether bf16 autocast speeds up ``device`` (see the module docstring), with the reason in words."""
    import torch  # deferred: the app imports the engine at start-up, torch takes seconds

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Bf16Check(True, "this GPU computes bf16 natively")
        return Bf16Check(False, "this GPU has no native bf16")
    if device.type == "cpu":
        return _cpu_check()
    return Bf16Check(False, f"mixed precision is not used on {device.type}")


def bf16_is_fast(device: torch.device) -> bool:
    return bf16_check(device).fast


@functools.cache
def _cpu_check() -> Bf16Check:
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in _TRUE:
        return Bf16Check(True, f"{CPU_BF16_ENV}={forced}")
    if forced in _FALSE:
        return Bf16Check(False, f"{CPU_BF16_ENV}={forced}")
    if not _onednn_has_bf16():
        return Bf16Check(False, "this CPU has no bf16 units, so bf16 would be far slower than fp32")
    if platform.machine().lower() in _X86:
        units = _x86_bf16_units()
        if units:
            return Bf16Check(True, f"this CPU computes bf16 natively, with {units} units")
        return Bf16Check(False, "this CPU only emulates bf16 (no AVX512-BF16 or AMX units)")
    speedup = measure_cpu_bf16_speedup()
    if speedup >= MIN_SPEEDUP:
        return Bf16Check(True, f"this CPU computes bf16 natively ({speedup:.1f}x fp32's speed, measured)")
    return Bf16Check(False, f"this CPU only emulates bf16 ({speedup:.1f}x fp32's speed, measured)")


def _onednn_has_bf16() -> bool:
    import torch  # deferred: see bf16_check

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def _x86_bf16_units() -> str:
    """"AMX" / "AVX512-BF16" when this x86 CPU has native bf16 units, else ""."""
    import torch  # deferred: see bf16_check

    for name, check in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported")):
        found = getattr(torch.cpu, check, None)
        if found is not None and found():
            return name
    return ""


def measure_cpu_bf16_speedup(rows: int = 256, width: int = 768, rounds: int = 5) -> float:
    """fp32 time / bf16-autocast time of a linear layer's forward + backward.

    The two alternate for ``rounds`` rounds after one untimed call each (kernel selection), and the
    fastest call of each counts, so a busy moment slows both sides rather than one.
    """
    import torch  # deferred: see bf16_check

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=generator)
    w = torch.randn(width, width, generator=generator, requires_grad=True)

    def once(dtype: torch.dtype | None) -> float:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            start = time.perf_counter()
            (x @ w).float().square().mean().backward()
            elapsed = time.perf_counter() - start
        w.grad = None
        return elapsed

    once(None), once(torch.bfloat16)
    fp32, bf16 = math.inf, math.inf
    for _ in range(rounds):
        fp32 = min(fp32, once(None))
        bf16 = min(bf16, once(torch.bfloat16))
    return fp32 / max(bf16, 1e-9)
