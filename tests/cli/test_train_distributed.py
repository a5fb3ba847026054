"""``clipstudio train --nproc-per-node N``: one run as N processes under torchrun (CPU, gloo).

Run as real subprocesses: torchrun's agent, its workers and Ctrl+C behave as on a user's machine.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipstudio.engine.runs.layout import LATEST, find_checkpoint, read_run_info
from clipstudio.engine.training.checkpoint import load_train_state

_TIMEOUT_S = 240


@pytest.fixture
def class_data(tmp_path, make_class_folders) -> Path:
    """3 classes x 6 images: 12 to train on, 6 to validate on."""
    return make_class_folders(tmp_path / "classes", {"red": 6, "green": 6, "blue": 6})


def _train_command(data: Path, model: Path, run: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "clipstudio", "train", str(data), "--model", str(model), "--device", "cpu",
        "--batch-size", "4", "--output", str(run), "--no-amp", "--val-fraction", "0.34", "--nproc-per-node", "2", *extra,
    ]


@pytest.mark.slow  # two training processes
def test_nproc_per_node_trains_one_run_and_only_the_first_process_reports(class_data, tiny_clip_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        _train_command(class_data, tiny_clip_dir, run, "--epochs", "1"),
        capture_output=True, text=True, timeout=_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Run folder:") == 1
    assert proc.stdout.count("epoch 1/1") == 1
    info = read_run_info(run)
    assert (info["processes"], info["global_batch_size"]) == (2, 8)
    assert load_train_state(find_checkpoint(run, LATEST))["step"] == 2  # 12 images, 8 per step


@pytest.mark.slow  # two processes start
def test_a_failing_process_ends_the_run_with_its_one_line_error(class_data, tmp_path):
    proc = subprocess.run(
        _train_command(class_data, tmp_path / "no-model-here", tmp_path / "run", "--epochs", "1"),
        capture_output=True, text=True, timeout=_TIMEOUT_S,
    )
    assert proc.returncode == 2
    # Every process fails alike; the first prints it, and the launcher does not repeat it.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("clipstudio: error: ")]
    assert len(errors) == 1 and "no-model-here" in errors[0], proc.stderr[-2000:]


@pytest.mark.slow  # two training processes
def test_ctrl_c_stops_every_process_and_saves_once(class_data, tiny_clip_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _train_command(class_data, tiny_clip_dir, run, "--epochs", "500"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + _TIMEOUT_S
        while not (run / "metrics.jsonl").exists():  # training has started
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Resume with: clipstudio train --resume-from" in out
    assert out.count("Cancelled in epoch") == 1
    state = load_train_state(find_checkpoint(run, LATEST))
    assert 0 < state["step"] < 500 * 2
