"""bf16 only where it is fast: native bf16 units, never emulated ones (which made CPU training crawl)."""

from __future__ import annotations

import pytest
import torch

from clipstudio.engine.runtime import precision
from clipstudio.engine.training.optimizer import amp_policy


@pytest.fixture
def fresh_check():
    precision._cpu_check.cache_clear()
    yield
    precision._cpu_check.cache_clear()


def test_a_cpu_without_bf16_units_trains_in_fp32_and_says_why(fresh_check, monkeypatch):
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(precision, "_onednn_has_bf16", lambda: False)
    policy = amp_policy(torch.device("cpu"), enabled=True)
    assert policy.dtype is None and not policy.use_scaler
    assert policy.description == (
        "full precision (fp32) — this CPU has no bf16 units, so bf16 would be far slower than fp32"
    )


@pytest.mark.parametrize(("speedup", "fast"), [(3.0, True), (0.5, False), (1.1, False)])
def test_a_cpu_with_a_bf16_code_path_is_measured(fresh_check, monkeypatch, speedup, fast):
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(precision, "_onednn_has_bf16", lambda: True)
    monkeypatch.setattr(precision.platform, "machine", lambda: "aarch64")  # measured: not x86
    monkeypatch.setattr(precision, "measure_cpu_bf16_speedup", lambda: speedup)
    check = precision.bf16_check(torch.device("cpu"))
    assert check.fast is fast
    assert f"{speedup:.1f}x fp32's speed, measured" in check.reason
    assert amp_policy(torch.device("cpu"), enabled=True).dtype == (torch.bfloat16 if fast else None)


def test_the_environment_forces_the_answer_without_measuring(fresh_check, monkeypatch):
    monkeypatch.setattr(precision, "measure_cpu_bf16_speedup", pytest.fail)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert not precision.bf16_is_fast(torch.device("cpu"))
    precision._cpu_check.cache_clear()
    monkeypatch.setenv(precision.CPU_BF16_ENV, "1")
    assert amp_policy(torch.device("cpu"), enabled=True).name == "bfloat16"


def test_mixed_precision_off_is_fp32_everywhere():
    policy = amp_policy(torch.device("cpu"), enabled=False)
    assert policy.dtype is None and policy.description == "full precision (fp32) — mixed precision is off"


def test_the_measurement_times_both_precisions_on_this_cpu():
    speedup = precision.measure_cpu_bf16_speedup(rows=32, width=64, rounds=1)
    assert 0 < speedup < 1000


@pytest.mark.parametrize(("units", "fast"), [("AVX512-BF16", True), ("", False)])
def test_x86_cpus_answer_from_their_bf16_units_not_a_timing(fresh_check, monkeypatch, units, fast):
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(precision, "_onednn_has_bf16", lambda: True)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(precision, "_x86_bf16_units", lambda: units)
    monkeypatch.setattr(precision, "measure_cpu_bf16_speedup", pytest.fail)
    assert precision.bf16_check(torch.device("cpu")).fast is fast
