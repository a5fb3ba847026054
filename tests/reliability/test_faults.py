"""Faults during training: cancel anywhere, SIGKILL mid-write, a full disk, NaN, GPU out of memory, corrupted folders.

Each case ends the same way for the user: the run folder still holds a checkpoint that loads and
resumes, and what went wrong is one clear message (never a lost run, never a bare traceback).
Tiny models, generated data; no timing asserts.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clipstudio.engine import checkpoint as checkpoint_module
from clipstudio.engine.checkpoint import find_checkpoint, load_train_state
from clipstudio.engine.config import DataConfig, ModelConfig, PromptConfig, TrainConfig
from clipstudio.engine.errors import ClipStudioError, ConfigError, ModelError
from clipstudio.engine.events import MessageLogged, TrainEnded, TrainStarted
from clipstudio.engine.models import load_model
from clipstudio.engine.runs import load_run_model, read_run_info
from clipstudio.engine.trainer import DiskFullError, Trainer

REPO = Path(__file__).resolve().parents[2]


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a busy 2-core machine: one intra-op thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_classes(tmp_path, make_class_folders) -> Path:
    """3 classes x 5 images: 12 training and 3 validation images."""
    return make_class_folders(tmp_path / "classes", {"red": 5, "green": 5, "blue": 5})


def make_cfg(data: Path, model_dir: Path, output: Path, **overrides) -> TrainConfig:
    """A fast, deterministic run: one prompt per class, 16 px images, 2 epochs of batch 4."""
    settings = dict(
        output=str(output),
        epochs=2,
        batch_size=4,
        learning_rate=1e-3,
        warmup_steps=0,
        amp=False,
        num_workers=1,
        log_every_steps=1,
        save_best=False,
        img_size=16,
        augmentation="none",
    )
    settings.update(overrides)
    return TrainConfig(
        data=DataConfig(path=str(data), val_fraction=0.2, seed=0),
        model=ModelConfig(spec=str(model_dir), device="cpu"),
        prompts=PromptConfig(templates=["a photo of {class_name}."]),
        **settings,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]


def resume(cfg: TrainConfig, run: Path, **kwargs):
    return Trainer(dataclasses.replace(cfg, resume_from=str(run)), **kwargs).fit()


def assert_finite_weights(folder: Path) -> None:
    weights = load_model(str(folder), device="cpu").torch_module.state_dict()
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def logged_steps(run: Path) -> list[int]:
    file = run / "metrics.jsonl"
    lines = file.read_text(encoding="utf-8").splitlines() if file.is_file() else []
    return [json.loads(line)["step"] for line in lines]


def leftovers(run: Path) -> list[str]:
    """Temp files and folders a write left behind in the run folder."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if ".tmp" in p.name)


# --- cancel ----------------------------------------------------------------------------------------


def test_cancel_at_100_random_points_always_leaves_a_loadable_resumable_checkpoint(
    tmp_path, small_classes, tiny_dual_dir, monkeypatch
):
    # fsync guards against power loss, not against a cancel; skipping it keeps 100 trials quick.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    model = load_model(str(tiny_dual_dir), device="cpu")
    start = {k: v.clone() for k, v in model.torch_module.state_dict().items()}
    rng = np.random.default_rng(0)
    # A 2-epoch run polls should_stop 5 to 11 times (steps, validation batches; image decoding once).
    max_calls = 12
    outcomes: dict[str, int] = {}
    for trial in range(100):
        # Batch size and accumulation vary, so the cancel lands at different steps and epoch positions.
        cfg = make_cfg(
            small_classes,
            tiny_dual_dir,
            tmp_path / f"trial{trial}",
            batch_size=int(rng.choice([3, 4, 6])),
            grad_accum=int(rng.choice([1, 2])),
        )
        limit = int(rng.integers(1, max_calls))
        calls = []
        recorder = Recorder()

        def stop(calls=calls, limit=limit) -> bool:
            calls.append(1)
            return len(calls) >= limit

        model.torch_module.load_state_dict(start)  # the GUI way: a loaded model, trained in place
        result = Trainer(cfg, callbacks=[recorder], should_stop=stop, model=model).fit()

        where = f"trial {trial} (cancel at call {limit}, batch {cfg.batch_size}, accum {cfg.grad_accum})"
        assert recorder.events[-1].status == result.status, where
        if result.status == "completed":
            outcomes["completed"] = outcomes.get("completed", 0) + 1  # the limit was beyond this run's polls
            continue
        assert result.status == "cancelled", f"{where}: {result.message}"
        latest = find_checkpoint(result.run_dir)
        if latest is None:
            assert "nothing was trained" in result.message, where
            outcomes["nothing trained"] = outcomes.get("nothing trained", 0) + 1
            continue
        outcomes["cancelled"] = outcomes.get("cancelled", 0) + 1
        # The checkpoint is the cancel point itself: every logged step is in it, none after it.
        logged = logged_steps(result.run_dir)
        assert load_train_state(latest)["step"] == (logged[-1] if logged else 0), where
        model = load_run_model(result.run_dir, "latest", device="cpu")
        assert model.encode_texts(["a photo of red."]).shape == (1, 16), where
        assert not leftovers(result.run_dir), where
        if trial % 10 == 0:
            resumed = resume(cfg, result.run_dir)
            assert resumed.status == "completed", f"{where}: {resumed.message}"
            assert resumed.history["epoch"] == [1, 2], where
            total = recorder.of(TrainStarted)[0].total_steps
            assert logged_steps(result.run_dir) == list(range(1, total + 1)), where  # none lost or repeated
            assert not leftovers(result.run_dir), where
    print(outcomes)
    assert outcomes.get("cancelled", 0) >= 50, outcomes
