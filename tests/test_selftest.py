"""``--selftest``: the check the frozen app runs after every build, here on the source checkout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clipstudio import selftest
from clipstudio.cli import main as cli
from clipstudio.engine.runtime.device import DeviceReport, GpuInfo

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ["window", "PDF report", "libraries", "model", "zero-shot", "linear probe", "no network"]


@pytest.mark.slow
def test_selftest_passes_offline_from_the_launcher(tmp_path):
    """`python main.py --selftest`, as the frozen ClipStudio runs it: every check ok, no network touched."""
    report_path = tmp_path / "selftest.json"
    env = {**os.environ, "CLIPSTUDIO_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("CLIPSTUDIO_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "main.py", "--selftest", "--report", str(report_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert all(c["ok"] for c in report["checks"]), report["summary"]
    assert report["network_attempts"] == []
    assert report["frozen"] is False
    assert isinstance(report["cuda_available"], bool)
    assert "PASSED" in done.stdout
    # The test's scratch caches and run folder are gone; only the report (and the app's log) remain.
    assert not (tmp_path / "home" / "cache").exists()
    assert not (tmp_path / "home" / "runs").exists()


def _fake_checks(monkeypatch, model_check):
    monkeypatch.setattr(selftest, "check_window", lambda: "no window in this test")
    monkeypatch.setattr(selftest, "check_report_pdf", lambda: "no PDF in this test")
    monkeypatch.setattr(selftest, "check_libraries", lambda: "not imported in this test")
    monkeypatch.setattr(selftest, "_check_model", model_check)
    monkeypatch.setattr(selftest, "_check_zero_shot", lambda state, cache: "fake")
    monkeypatch.setattr(selftest, "_check_linear_probe", lambda state, run_dir: "fake")


def test_a_network_attempt_fails_the_selftest(monkeypatch, tmp_path):
    def phones_home(state):
        try:
            socket.create_connection(("huggingface.co", 443), timeout=1)
        except OSError:
            pass  # code that falls back quietly when offline still counts as having tried
        return "loaded"

    _fake_checks(monkeypatch, phones_home)
    report_path = tmp_path / "report.json"
    assert selftest.run_selftest(report_path, print_fn=lambda _line: None) == 1
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"] is False
    assert report["network_attempts"] == ["create_connection ('huggingface.co', 443)"]
    network = next(c for c in report["checks"] if c["name"] == "no network")
    assert network["ok"] is False


def test_a_failed_check_is_reported_and_skips_what_depends_on_it(monkeypatch, tmp_path):
    def missing_weights(state):
        raise FileNotFoundError("the built-in model's MiniLM text tower file is missing: /x/model.safetensors")

    _fake_checks(monkeypatch, missing_weights)
    lines: list[str] = []
    report_path = tmp_path / "report.json"
    assert selftest.run_selftest(report_path, print_fn=lines.append) == 1
    checks = {c["name"]: c for c in json.loads(report_path.read_text(encoding="utf-8"))["checks"]}
    assert list(checks) == CHECKS
    assert checks["window"]["ok"] and checks["no network"]["ok"]
    assert not checks["model"]["ok"] and "MiniLM" in checks["model"]["detail"]
    assert "FileNotFoundError" in checks["model"]["traceback"]
    assert checks["zero-shot"]["detail"].startswith("skipped")
    assert any("FAILED" in line for line in lines)


def test_the_guard_is_removed_after_the_selftest(monkeypatch, tmp_path):
    _fake_checks(monkeypatch, lambda state: "loaded")
    before = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)
    assert selftest.run_selftest(tmp_path / "r.json", print_fn=lambda _line: None) == 0
    assert (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == before


@pytest.mark.parametrize("argv", [["selftest", "--report", "REPORT"], ["--selftest"]])
def test_cli_routes_selftest(monkeypatch, tmp_path, argv):
    calls = []
    monkeypatch.setattr(selftest, "run_selftest", lambda report=None: calls.append(report) or 0)
    report = str(tmp_path / "r.json")
    assert cli.main([report if a == "REPORT" else a for a in argv]) == 0
    assert calls == [report if "--report" in argv else None]


def test_the_report_names_the_gpu_torch_sees(monkeypatch):
    gpus = (GpuInfo(0, "NVIDIA H200", free_bytes=1, total_bytes=2), GpuInfo(1, "NVIDIA L4"))
    report = DeviceReport(torch_version="2.5", cuda_build="12.4", cuda_available=True, cpu_cores=16, gpus=gpus)
    monkeypatch.setattr(selftest, "probe_devices", lambda: report)
    assert selftest._cuda() == {"cuda_available": True, "cuda_build": "12.4", "gpu": "NVIDIA H200"}

    cpu_only = DeviceReport(torch_version="2.5", cuda_build=None, cuda_available=False, cpu_cores=2)
    monkeypatch.setattr(selftest, "probe_devices", lambda: cpu_only)
    assert selftest._cuda() == {"cuda_available": False, "cuda_build": None, "gpu": None}


def test_a_broken_torch_is_reported_not_raised(monkeypatch):
    def broken():
        raise OSError("libcudart.so: cannot open shared object file")

    monkeypatch.setattr(selftest, "probe_devices", broken)
    assert selftest._cuda() == {"cuda_available": False, "cuda_build": None, "gpu": None,
                                "error": "libcudart.so: cannot open shared object file"}
