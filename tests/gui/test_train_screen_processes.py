"""The Train screen's "Use all N GPUs": the run as a group of processes (``gui/process_run.py``).

On this CPU machine the option is forced on by telling the screen there are 2 devices, each process
running on the CPU (gloo); the run goes through the same code path as on a machine with 2 GPUs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.events import (
    EpochEnded,
    EvalEnded,
    StepEnded,
    TrainEnded,
    TrainingStatus,
    TrainStarted,
)
from clipstudio.engine.runs.layout import LATEST, find_checkpoint, read_run_info, resumable_step
from clipstudio.engine.training.checkpoint import load_train_state
from clipstudio.gui import main_window as main_window_module
from clipstudio.gui import process_run as process_run_module
from clipstudio.gui.screens.train_screen import TrainScreen

RUN_TIMEOUT_MS = 240_000


@pytest.fixture
def screen(open_screen, app_state):
    return open_screen(TrainScreen, app_state, show=True)


@pytest.fixture
def class_data(tmp_path, make_class_folders, app_state, tiny_clip_dir):
    """3 classes x 6 images opened in the app, with the tiny CLIP model chosen."""
    from clipstudio.engine.data import load_dataset

    root = make_class_folders(tmp_path / "data", {"red": 6, "green": 6, "blue": 6})
    app_state.set_dataset(load_dataset(root), str(root))
    app_state.model_spec = str(tiny_clip_dir)
    app_state.split_settings = {"val_fraction": 0.34, "test_fraction": 0.0, "seed": 0}
    return root


def test_the_option_shows_only_with_more_than_one_gpu(screen):
    assert not screen.all_gpus.isVisible()  # a fresh screen has not been told of any GPU
    screen.set_gpu_count(1)
    assert not screen.all_gpus.isVisible()
    assert not screen.use_all_gpus()
    screen.set_gpu_count(4)
    assert screen.all_gpus.isVisible()
    assert screen.all_gpus.text() == "Use all 4 GPUs"
    assert not screen.use_all_gpus()  # offered, not chosen
    screen.all_gpus.setChecked(True)
    assert screen.use_all_gpus()


def test_the_installed_app_does_not_offer_it(screen, monkeypatch):
    # A frozen build has no Python to start `-m clipstudio` processes with.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    screen.set_gpu_count(4)
    screen.all_gpus.setChecked(True)
    assert not screen.all_gpus.isVisible() and not screen.use_all_gpus()


def test_the_app_tells_the_train_screen_how_many_gpus_it_found(main_window, monkeypatch):
    monkeypatch.setattr(main_window_module, "local_gpu_count", lambda: 3)
    main_window._on_device_worker_succeeded("GPU: NVIDIA H100")
    option = main_window.screen_for("train").all_gpus
    assert not option.isHidden() and option.text() == "Use all 3 GPUs"


def test_the_launcher_command_runs_the_config_as_n_processes(tmp_path):
    command = process_run_module.launcher_command(tmp_path / "config.json", 3)
    assert command[1:] == ["-m", "clipstudio", "train", "--config", str(tmp_path / "config.json"),
                           "--nproc-per-node", "3"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        # The first process's own line; the launcher prints nothing more then.
        ("Epoch 1/3\nclipstudio: error: training failed: CUDA out of memory.\n", "CUDA out of memory."),
        ("clipstudio: error: /data/x does not exist.\n", "/data/x does not exist."),
        # Another process's error, or a signal: the launcher's line names the process.
        ("Epoch 1/3\nclipstudio: error: process 1 failed: it could not read its images\n",
         "process 1 failed: it could not read its images"),
        ("Epoch 1/3\n", ""),
    ],
)
def test_a_failed_run_reads_as_its_one_error_line(output, message):
    assert process_run_module._error_line(output) == message


def _kill_group(proc: subprocess.Popen) -> None:
    """The launcher and its workers (its own session on POSIX)."""
    if hasattr(os, "killpg"):
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()


def _live_children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow  # two training processes under torchrun
def test_two_process_run_feeds_the_live_plots_and_stop_saves_once(qtbot, screen, class_data, monkeypatch):
    events: list[object] = []
    launched: list[subprocess.Popen] = []
    original_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        proc = original_popen(*args, **kwargs)
        launched.append(proc)
        return proc

    monkeypatch.setattr(process_run_module.subprocess, "Popen", recording_popen)
    # Many short epochs: the plots get epoch points, and Stop comes while the run still trains.
    cfg = TrainConfig(method="full", epochs=200, batch_size=2, amp=False, warmup_steps=1, log_every_steps=1)
    run_dir = Path(class_data).parent / "run"
    cfg.output = str(run_dir)
    screen.form.set_config(cfg)
    screen.set_gpu_count(2, device="cpu")
    screen.all_gpus.setChecked(True)

    assert screen.start()
    screen._process_run.event_emitted.connect(events.append)
    assert screen.busy() and not screen.form.isEnabled() and not screen.all_gpus.isEnabled()
    plots = screen.plots
    try:
        # Two epochs validated: the epoch curve has the starting model's point and epochs 1 and 2.
        qtbot.waitUntil(lambda: plots.buffers["val_balanced_acc"].size >= 3, timeout=RUN_TIMEOUT_MS)
        assert plots.buffers["train_loss"].size >= 2
        assert plots.buffers["lr"].size >= 2
        started = next(e for e in events if isinstance(e, TrainStarted))
        # 12 training images, 2 processes x 2 images per step: 3 steps per epoch.
        assert (started.steps_per_epoch, started.total_steps, started.epochs) == (3, 600, 200)
        assert started.device == "2 CPU processes"
        assert [e.epoch for e in events if isinstance(e, EpochEnded)][:2] == [1, 2]
        assert any(isinstance(e, EvalEnded) and e.epoch == 0 for e in events)
        assert any(isinstance(e, StepEnded) for e in events)
        assert list(plots.buffers["val_balanced_acc"].x[:3]) == [0.0, 1.0, 2.0]
        assert list(plots.buffers["val_loss"].x[:3]) == [0.0, 3.0, 6.0]  # each after its epoch's last step

        launcher = launched[0]
        workers = _live_children(launcher.pid)
        assert len([p for p in workers if "clipstudio" in " ".join(p.cmdline())]) >= 2
        screen.stop()
        assert screen.eta.text().startswith("Stopping")
        qtbot.waitUntil(lambda: not screen.busy(), timeout=RUN_TIMEOUT_MS)
    finally:
        for proc in launched:  # never leave processes behind, whatever failed above
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()

    assert launcher.returncode == 130
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    ended = [e for e in events if isinstance(e, TrainEnded)]
    assert len(ended) == 1 and TrainingStatus(ended[0].status) is TrainingStatus.CANCELLED
    step = resumable_step(run_dir)
    assert step is not None and 0 < step < 600
    assert load_train_state(find_checkpoint(run_dir, LATEST))["step"] == step
    assert read_run_info(run_dir)["processes"] == 2
    assert screen.resume_button.isEnabled()
    assert f"Resume continues from step {step}" in screen.eta.text()

    # Resume continues the run folder as processes again; the plots keep the curves so far.
    events.clear()
    assert screen.resume()
    screen._process_run.event_emitted.connect(events.append)
    try:
        qtbot.waitUntil(
            lambda: any(isinstance(e, StepEnded) and e.step > step for e in events), timeout=RUN_TIMEOUT_MS
        )
        resumed = next(e for e in events if isinstance(e, TrainStarted))
        assert resumed.start_step == step
        assert plots.buffers["train_loss"].x[0] <= step  # the past steps came from the run folder
        screen.stop()
        qtbot.waitUntil(lambda: not screen.busy(), timeout=RUN_TIMEOUT_MS)
    finally:
        for proc in launched[1:]:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
    assert launched[1].returncode == 130
    assert resumable_step(run_dir) > step
