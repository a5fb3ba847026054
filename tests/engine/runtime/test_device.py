"""Choosing the device from what a user wrote, and reporting what torch sees.

GPUs are simulated where the test needs them, so the choices are checked on any machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runtime.device import GpuInfo, device_in_words, probe_devices, select_device


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine whose torch sees two CUDA GPUs; the second won't say how much memory it has."""

    def mem_get_info(index):
        if index == 1:
            raise RuntimeError("CUDA error: busy or unavailable\nmore detail")
        return 3 * 2**30, 8 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(
        torch.cuda, "get_device_name", lambda index=None: f"Fake GPU {getattr(index, 'index', index)}"
    )
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    for spec in ("auto", "", None, " AUTO "):
        assert select_device(spec) == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")


def test_auto_prefers_apple_mps_over_the_cpu(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    assert select_device("mps") == torch.device("mps")


def test_auto_and_cuda_take_the_gpu_number_given(two_gpus):
    assert select_device("auto") == torch.device("cuda:0")
    assert select_device("auto", gpu_id=1) == torch.device("cuda:1")
    assert select_device("cuda", gpu_id=1) == torch.device("cuda:1")
    assert select_device("cuda:1") == torch.device("cuda:1")
    assert select_device("1") == torch.device("cuda:1")
    assert select_device(0) == torch.device("cuda:0")


def test_a_gpu_this_machine_lacks_is_refused_in_one_sentence(two_gpus):
    with pytest.raises(ConfigError, match=r"^Device 'cuda:2' is not available: this machine has 2 GPU\(s\)"):
        select_device("cuda:2")
    with pytest.raises(ConfigError, match="'auto' with gpu_id 5 is not available"):
        select_device("auto", gpu_id=5)


def test_cuda_without_a_gpu_says_so(no_gpu):
    for spec in ("cuda", "cuda:0", "0"):
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU here; use auto or cpu"):
            select_device(spec)
    with pytest.raises(ConfigError, match="Apple MPS is not available"):
        select_device("mps")


def test_an_unknown_device_names_the_choices():
    for spec in ("toaster", "cuda:x", "cuda:-1", "tpu"):
        with pytest.raises(ConfigError, match="use auto, cpu, cuda, cuda:N"):
            select_device(spec)


def test_devices_in_words(two_gpus):
    assert device_in_words(torch.device("cpu")) == "CPU"
    assert device_in_words(torch.device("cuda:1")) == "GPU: Fake GPU 1"
    assert device_in_words(torch.device("mps")) == "GPU: Apple MPS"


def test_probe_reports_this_machine():
    report = probe_devices()
    assert report.torch_version == torch.__version__
    assert report.cuda_build == torch.version.cuda
    assert report.cpu_cores == (os.cpu_count() or 1)
    assert report.cuda_available == torch.cuda.is_available()
    assert len(report.gpus) == (torch.cuda.device_count() if report.cuda_available else 0)


def test_probe_lists_each_gpu_with_its_memory_or_why_not(two_gpus):
    report = probe_devices()
    assert report.cuda_available
    assert report.gpus == (
        GpuInfo(0, "Fake GPU 0", free_bytes=3 * 2**30, total_bytes=8 * 2**30),
        GpuInfo(1, "Fake GPU 1", memory_error="CUDA error: busy or unavailable"),
    )


def test_importing_the_module_does_not_import_torch():
    code = "import sys, clipstudio.engine.runtime.device; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
