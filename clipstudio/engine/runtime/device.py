"""Which torch device the engine runs on, chosen in one place, and what torch can see.

``select_device`` turns what a user wrote ("auto", "cpu", "cuda", "cuda:1", "mps", or a GPU
number) into a ``torch.device``, with one clear sentence when that device isn't there.
``probe_devices`` reports the torch build, the GPUs with their memory and the CPU cores, as plain
values a screen can show. torch is imported inside the functions: the app imports this module at
start-up, and torch takes seconds to import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clipstudio.engine.errors import ConfigError

if TYPE_CHECKING:
    import torch

AUTO = "auto"
_CUDA_SPEC = re.compile(r"cuda(?::(\d+))?|(\d+)")


def select_device(spec: str | int | None = AUTO, *, gpu_id: int = 0) -> torch.device:
    """The torch device for ``spec``; ConfigError, in one sentence, when it is unknown or not here.

    ``spec``: "auto" (or "" / None): CUDA GPU ``gpu_id`` when torch sees a GPU, else Apple MPS,
    else the CPU. "cpu"; "mps"; "cuda" (GPU ``gpu_id``); "cuda:N" or a GPU number N.
    """
    import torch  # deferred: see the module docstring

    text = "" if spec is None else str(spec).strip().lower()
    if text in ("", AUTO):
        if not torch.cuda.is_available():
            return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
        index, asked = gpu_id, f"'auto' with gpu_id {gpu_id}"
    elif text == "cpu":
        return torch.device("cpu")
    elif text == "mps":
        if not torch.backends.mps.is_available():
            raise _unavailable(repr(spec), "Apple MPS is not available on this machine; use auto or cpu")
        return torch.device("mps")
    else:
        found = _CUDA_SPEC.fullmatch(text)
        if found is None:
            raise ConfigError(
                f"Unknown device {spec!r}; use auto, cpu, cuda, cuda:N (N a GPU number) or mps."
            )
        number = found.group(1) or found.group(2)
        index, asked = (int(number) if number is not None else gpu_id), repr(spec)
    if not torch.cuda.is_available():
        raise _unavailable(asked, "torch sees no CUDA GPU here; use auto or cpu")
    count = torch.cuda.device_count()
    if index >= count:
        raise _unavailable(asked, f"this machine has {count} GPU(s), numbered from 0")
    return torch.device(f"cuda:{index}")


def _unavailable(asked: str, why: str) -> ConfigError:
    return ConfigError(f"Device {asked} is not available: {why}.")


def device_in_words(device: torch.device) -> str:
    """ "CPU", "GPU: <name>" or "GPU: Apple MPS", as the status bar says it."""
    import torch  # deferred: see the module docstring

    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return "CPU"


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA GPU; memory in bytes, or ``memory_error`` when the driver wouldn't say."""

    index: int
    name: str
    free_bytes: int | None = None
    total_bytes: int | None = None
    memory_error: str = ""


@dataclass(frozen=True)
class DeviceReport:
    """What torch sees on this machine."""

    torch_version: str
    cuda_build: str | None  # the CUDA version torch was built with; None for a CPU-only build
    cuda_available: bool
    cpu_cores: int
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)


def probe_devices() -> DeviceReport:
    """Ask torch for its build, the GPUs it sees (with free and total memory) and the CPU cores."""
    import torch  # deferred: see the module docstring

    available = bool(torch.cuda.is_available())
    gpus = []
    for i in range(torch.cuda.device_count() if available else 0):
        name = torch.cuda.get_device_name(i)
        try:
            free, total = torch.cuda.mem_get_info(i)
        except RuntimeError as exc:  # e.g. the GPU is busy or in an exclusive mode
            gpus.append(GpuInfo(i, name, memory_error=str(exc).splitlines()[0]))
        else:
            gpus.append(GpuInfo(i, name, free_bytes=int(free), total_bytes=int(total)))
    return DeviceReport(
        torch_version=torch.__version__,
        cuda_build=torch.version.cuda,
        cuda_available=available,
        cpu_cores=os.cpu_count() or 1,
        gpus=tuple(gpus),
    )
