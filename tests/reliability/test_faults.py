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
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from clipstudio.engine.config import PromptConfig, TrainConfig
from clipstudio.engine.errors import ClipStudioError, ConfigError, DiskFullError, ModelError
from clipstudio.engine.events import MessageLogged, TrainEnded, TrainStarted
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.runs.layout import find_checkpoint, read_run_info
from clipstudio.engine.training import checkpoint as checkpoint_module
from clipstudio.engine.training.checkpoint import load_train_state
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_runs import Recorder, quick_train_config

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
        batch_size=4,
        warmup_steps=0,
        img_size=16,
        augmentation="none",
        prompts=PromptConfig(templates=["a photo of {class_name}."]),
    )
    settings.update(overrides)
    return quick_train_config(data, model_dir, output, val_fraction=0.2, **settings)


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


@pytest.mark.slow  # 100 training runs
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
    outcomes: Counter[str] = Counter()
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
            outcomes["completed"] += 1  # the limit was beyond this run's polls
            continue
        assert result.status == "cancelled", f"{where}: {result.message}"
        latest = find_checkpoint(result.run_dir)
        if latest is None:
            assert "nothing was trained" in result.message, where
            outcomes["nothing trained"] += 1
            continue
        outcomes["cancelled"] += 1
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
    assert outcomes["cancelled"] >= 50, outcomes  # most trials really cancel mid-run


# --- SIGKILL during a checkpoint write ----------------------------------------------------------

_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from clipstudio.engine.training import checkpoint, trainer
    from clipstudio.engine.config import TrainConfig, load_config

    torch.set_num_threads(1)
    cfg_file, marker, stage = sys.argv[1:4]
    calls = {"save": 0, "replace": 0}

    def hang():
        Path(marker).write_text("now", encoding="utf-8")
        time.sleep(600)  # the test kills us here

    real_save, real_replace = trainer.save_train_state, checkpoint._replace

    def slow_save(folder, state):  # epoch 2's checkpoint: model written, training state not yet
        calls["save"] += 1
        if stage == "writing" and calls["save"] == 2:
            hang()
        real_save(folder, state)

    def slow_replace(src, dst, *args):  # epoch 2: old folder moved aside, new one not yet in place
        real_replace(src, dst, *args)
        calls["replace"] += 1
        if stage == "swapping" and calls["replace"] == 2:
            hang()

    trainer.save_train_state, checkpoint._replace = slow_save, slow_replace
    trainer.Trainer(load_config(TrainConfig, cfg_file)).fit()
    """
)


@pytest.mark.slow  # trains in child processes that are killed
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only: SIGKILL")
@pytest.mark.parametrize(
    ("stage", "survivor"),
    [("writing", "checkpoint_latest"), ("swapping", "checkpoint_latest.old")],
)
def test_sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint(
    tmp_path, small_classes, tiny_dual_dir, stage, survivor
):
    from clipstudio.engine.config import save_config

    run = tmp_path / "run"
    cfg = make_cfg(small_classes, tiny_dual_dir, run, epochs=3)
    save_config(cfg, tmp_path / "cfg.json")
    marker = tmp_path / "hanging"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(tmp_path / "cfg.json"), str(marker), stage],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300  # a hang guard, not a timing assert
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=60)[0].decode(errors="replace")[-3000:]
        assert list(run.glob("checkpoint_latest.tmp-*")), "the kill must land mid-write"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    latest = find_checkpoint(run)
    assert latest == run / survivor
    assert load_train_state(latest)["epoch"] == 1
    assert_finite_weights(latest)
    assert load_run_model(run, "latest", device="cpu").encode_texts(["red"]).shape == (1, 16)

    resumed = resume(cfg, run)

    assert resumed.status == "completed", resumed.message
    assert resumed.history["epoch"] == [1, 2, 3]
    assert load_train_state(find_checkpoint(run))["epoch"] == 3
    # The killed write's temp folder (and any .old) is gone: no stale model copies eat the disk.
    assert not leftovers(run) and not (run / "checkpoint_latest.old").exists()


# --- a full disk ---------------------------------------------------------------------------------


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("write", ["checkpoint", "history"])
def test_a_full_disk_fails_clearly_and_keeps_the_previous_checkpoint(
    tmp_path, small_classes, tiny_dual_dir, monkeypatch, write
):
    import clipstudio.engine.training.trainer as trainer_module

    real_write_history = trainer_module.write_history
    real_save_file = checkpoint_module.save_safetensors
    epochs_written = []

    def history_then_full(run_dir, history):
        epochs_written.append(1)
        if len(epochs_written) == 2 and write == "history":
            _disk_full()
        real_write_history(run_dir, history)

    def state_then_full(tensors, path, *args, **kwargs):
        if len(epochs_written) == 2 and write == "checkpoint":
            _disk_full()  # epoch 2's training state, after its model files went in
        real_save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "write_history", history_then_full)
    monkeypatch.setattr(checkpoint_module, "save_safetensors", state_then_full)
    cfg = make_cfg(small_classes, tiny_dual_dir, tmp_path / "run", epochs=3)
    recorder = Recorder()

    with pytest.raises(DiskFullError) as caught:
        Trainer(cfg, callbacks=[recorder]).fit()

    run = tmp_path / "run"
    message = str(caught.value)
    assert isinstance(caught.value, ClipStudioError)
    assert "disk is full" in message and str(run) in message
    assert recorder.events[-1] == TrainEnded("failed", str(run), recorder.events[-1].best_metric, message)
    latest = find_checkpoint(run)
    assert latest == run / "checkpoint_latest" and load_train_state(latest)["epoch"] == 1
    assert_finite_weights(latest)
    assert not leftovers(run)  # no half-written checkpoint folder or temp file eats the little space left

    monkeypatch.setattr(checkpoint_module, "save_safetensors", real_save_file)
    monkeypatch.setattr(trainer_module, "write_history", real_write_history)
    resumed = resume(cfg, run)  # space freed: the run goes on from its last checkpoint
    assert resumed.status == "completed", resumed.message
    assert resumed.history["epoch"] == [1, 2, 3]


# --- NaN and inf -----------------------------------------------------------------------------------


def _poison_training_loss(monkeypatch, *, after_batches: int, poison):
    """Apply ``poison(loss, logits)`` to the training loss from batch ``after_batches + 1`` on."""
    import clipstudio.engine.training.methods.contrastive as contrastive

    real_loss = contrastive.contrastive_loss
    calls = []

    def loss(logits, *args, **kwargs):
        value = real_loss(logits, *args, **kwargs)
        if logits.requires_grad:  # training batches only, not validation
            calls.append(1)
            if len(calls) > after_batches:
                return poison(value, logits)
        return value

    monkeypatch.setattr(contrastive, "contrastive_loss", loss)
    return real_loss


class _NanGradient(torch.autograd.Function):
    """Identity forward; NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda loss, logits: loss * float("inf"), id="inf loss"),
        pytest.param(lambda loss, logits: loss * float("nan"), id="nan loss"),
        pytest.param(lambda loss, logits: loss + _NanGradient.apply(logits).sum() * 0, id="nan gradient"),
    ],
)
def test_a_non_finite_loss_or_gradient_mid_epoch_stops_with_the_last_good_checkpoint(
    tmp_path, small_classes, tiny_dual_dir, monkeypatch, poison
):
    # 3 batches per epoch: epoch 2's last batch goes bad, after one good epoch and two good steps.
    real_loss = _poison_training_loss(monkeypatch, after_batches=5, poison=poison)
    cfg = make_cfg(small_classes, tiny_dual_dir, tmp_path / "run", epochs=3)
    recorder = Recorder()

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "failed"
    assert (
        "NaN or infinite in epoch 2 (step 6)" in result.message and "last good checkpoint" in result.message
    )
    assert recorder.events[-1].status == "failed" and recorder.events[-1].message == result.message
    latest = find_checkpoint(result.run_dir)
    assert load_train_state(latest)["epoch"] == 1
    assert_finite_weights(latest)  # the bad step never reached the weights that were saved

    import clipstudio.engine.training.methods.contrastive as contrastive

    monkeypatch.setattr(contrastive, "contrastive_loss", real_loss)
    resumed = resume(cfg, result.run_dir, callbacks=[recorder])  # e.g. after lowering the learning rate
    assert resumed.status == "completed", resumed.message
    assert resumed.history["epoch"] == [1, 2, 3]


# --- GPU out of memory ---------------------------------------------------------------------------


def _limit_gpu_memory(monkeypatch, target, name: str, max_images: int, seen: list[int]):
    """``target.name`` raises CUDA out-of-memory on training batches over ``max_images`` images."""
    real = getattr(target, name)

    def forward(*args, **kwargs):
        batch = args[-1]  # (pixels,) on a model instance, (self, x) on a class
        if torch.is_grad_enabled():
            if len(batch) > max_images:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            seen.append(len(batch))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, forward)


def test_gpu_out_of_memory_halves_the_batch_and_training_goes_on(
    tmp_path, small_classes, tiny_dual_dir, monkeypatch
):
    model = load_model(str(tiny_dual_dir), device="cpu")
    seen: list[int] = []
    _limit_gpu_memory(monkeypatch, model, "forward_images", 4, seen)
    cfg = make_cfg(small_classes, tiny_dual_dir, tmp_path / "run", batch_size=8, epochs=3)
    recorder = Recorder()
    trainer = Trainer(cfg, callbacks=[recorder], model=model, should_stop=lambda: trainer.steps_done >= 3)

    result = trainer.fit()

    assert result.status == "cancelled", result.message  # trained on, until cancelled to test the resume
    warnings = [e.text for e in recorder.of(MessageLogged) if e.level == "warning"]
    assert warnings == ["GPU out of memory at batch size 8; retrying with 4."]
    assert seen and max(seen) <= 4
    # The data plan is unchanged: 12 images in batches of 8 are still 2 optimizer steps per epoch.
    assert recorder.of(TrainStarted)[0].steps_per_epoch == 2
    assert read_run_info(result.run_dir)["batch_size_used"] == 4

    resumed_model = load_model(str(tiny_dual_dir), device="cpu")
    resumed_seen: list[int] = []
    _limit_gpu_memory(monkeypatch, resumed_model, "forward_images", 1000, resumed_seen)
    resumed = resume(cfg, result.run_dir, model=resumed_model, callbacks=[recorder])

    assert resumed.status == "completed", resumed.message
    assert resumed_seen and max(resumed_seen) <= 4  # the resumed run starts at the size that fitted
    assert read_run_info(result.run_dir)["batch_size_used"] == 4
    assert load_train_state(find_checkpoint(result.run_dir))["step"] == 6


def test_gpu_out_of_memory_at_the_smallest_batch_fails_with_a_clear_message(
    tmp_path, small_classes, tiny_dual_dir, monkeypatch
):
    model = load_model(str(tiny_dual_dir), device="cpu")
    _limit_gpu_memory(monkeypatch, model, "forward_images", 0, [])
    cfg = make_cfg(small_classes, tiny_dual_dir, tmp_path / "run", batch_size=8)
    recorder = Recorder()

    with pytest.raises(ConfigError, match="out of memory even at batch size 2") as caught:
        Trainer(cfg, callbacks=[recorder], model=model).fit()

    warnings = [e.text for e in recorder.of(MessageLogged) if e.level == "warning"]
    assert warnings == [
        "GPU out of memory at batch size 8; retrying with 4.",
        "GPU out of memory at batch size 4; retrying with 2.",
    ]
    assert recorder.events[-1].status == "failed" and recorder.events[-1].message == str(caught.value)
    assert "CPU" in str(caught.value)


# --- corrupted checkpoints and model folders -----------------------------------------------------


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, tiny_dual_dir):
    """One finished 1-epoch run per method ("full", "lora", "linear_probe"); copy before damaging."""
    from tests.fixtures_data import write_png

    root = tmp_path_factory.mktemp("trained")
    data = root / "classes"
    for name, colour in (("red", (200, 40, 40)), ("green", (40, 200, 40)), ("blue", (40, 40, 200))):
        for i in range(5):
            write_png(data / name / f"{name}_{i}.png", colour)
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:  # module scope: the per-test isolated home is not set up yet
        mp.setenv("CLIPSTUDIO_HOME", str(root / "home"))
        mp.setenv("CLIPSTUDIO_CACHE_DIR", str(root / "home" / "cache"))
        for method in ("full", "lora", "linear_probe"):
            cfg = make_cfg(data, tiny_dual_dir, root / method, method=method, epochs=1, save_best=True)
            assert Trainer(cfg).fit().status == "completed"
            runs[method] = (cfg, root / method)
    torch.set_num_threads(threads)
    return runs


def _copy_run(trained_runs, method: str, tmp_path: Path) -> tuple[TrainConfig, Path]:
    cfg, source = trained_runs[method]
    run = tmp_path / "run"
    shutil.copytree(source, run)
    return dataclasses.replace(cfg, output=str(run), epochs=2), run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _refused_resume(cfg: TrainConfig, run: Path, error: type[Exception]) -> str:
    recorder = Recorder()
    with pytest.raises(error) as caught:
        resume(cfg, run, callbacks=[recorder])
    assert recorder.events[-1].status == "failed" and recorder.events[-1].message == str(caught.value)
    return str(caught.value)


MODEL_DAMAGE = {
    "truncated weights": lambda ckpt: _truncate(ckpt / "model.safetensors"),
    "garbage manifest": lambda ckpt: (ckpt / "clipstudio_model.json").write_bytes(b"\x00{not json"),
    "missing weights": lambda ckpt: (ckpt / "model.safetensors").unlink(),
    "missing manifest": lambda ckpt: (ckpt / "clipstudio_model.json").unlink(),
    "missing text encoder": lambda ckpt: shutil.rmtree(ckpt / "text_encoder"),
}


@pytest.mark.parametrize("damage", sorted(MODEL_DAMAGE))
def test_a_corrupted_checkpoint_model_is_refused_by_every_loader(tmp_path, trained_runs, damage):
    cfg, run = _copy_run(trained_runs, "full", tmp_path)
    for name in ("checkpoint_latest", "checkpoint_best"):
        MODEL_DAMAGE[damage](run / name)

    with pytest.raises(ModelError, match="checkpoint_latest"):
        load_model(str(run / "checkpoint_latest"), device="cpu")
    with pytest.raises(ModelError, match="checkpoint_best"):
        load_run_model(run, device="cpu")
    with pytest.raises(ModelError, match="checkpoint_best"):
        load_model(str(run), device="cpu")  # a run folder as the model spec
    assert "checkpoint_latest" in _refused_resume(cfg, run, ModelError)


STATE_DAMAGE = {
    "garbage json": lambda ckpt: (ckpt / "train_state.json").write_bytes(b"\xff\xfe garbage"),
    "truncated tensors": lambda ckpt: _truncate(ckpt / "train_state.safetensors"),
    "missing tensors": lambda ckpt: (ckpt / "train_state.safetensors").unlink(),
    "json without the state": lambda ckpt: (ckpt / "train_state.json").write_text('{"format": 1}'),
    "state without the optimizer": lambda ckpt: (ckpt / "train_state.json").write_text(
        '{"format": 1, "state": {"method": "full"}}'
    ),
}


@pytest.mark.parametrize("damage", sorted(STATE_DAMAGE))
def test_a_corrupted_training_state_refuses_resume_but_the_model_still_loads(tmp_path, trained_runs, damage):
    cfg, run = _copy_run(trained_runs, "full", tmp_path)
    STATE_DAMAGE[damage](run / "checkpoint_latest")

    message = _refused_resume(cfg, run, ConfigError)

    assert "checkpoint_latest" in message
    # The trained weights are intact and still usable for evaluation.
    assert load_run_model(run, "latest", device="cpu").encode_texts(["red"]).shape == (1, 16)


@pytest.mark.parametrize(
    ("method", "file"), [("linear_probe", "linear_head.safetensors"), ("lora", "adapter.safetensors")]
)
def test_corrupted_linear_probe_head_or_lora_adapters_are_refused(tmp_path, trained_runs, method, file):
    cfg, run = _copy_run(trained_runs, method, tmp_path)
    for name in ("checkpoint_latest", "checkpoint_best"):
        _truncate(run / name / file)

    message = _refused_resume(cfg, run, ModelError)
    assert "checkpoint_latest" in message and "can't be read" in message
    if method == "linear_probe":
        with pytest.raises(ModelError, match="linear-probe head"):
            load_run_model(run, device="cpu")


def test_a_missing_checkpoint_folder_falls_back_to_its_old_copy(tmp_path, trained_runs):
    cfg, run = _copy_run(trained_runs, "full", tmp_path)
    # A crash between the two renames of a checkpoint swap leaves only the .old folders.
    for name in ("checkpoint_latest", "checkpoint_best"):
        (run / name).rename(run / f"{name}.old")

    assert load_run_model(run, "latest", device="cpu").encode_texts(["red"]).shape == (1, 16)
    assert load_model(str(run), device="cpu").encode_texts(["red"]).shape == (1, 16)

    resumed = resume(cfg, run)

    assert resumed.status == "completed", resumed.message
    assert resumed.history["epoch"] == [1, 2]
    assert find_checkpoint(run) == run / "checkpoint_latest"
    assert not (run / "checkpoint_latest.old").exists()


def test_a_run_without_any_checkpoint_is_refused(tmp_path, trained_runs):
    cfg, run = _copy_run(trained_runs, "full", tmp_path)
    for name in ("checkpoint_latest", "checkpoint_best"):
        shutil.rmtree(run / name)

    with pytest.raises(ModelError, match="no finished checkpoint"):
        load_run_model(run, device="cpu")
    assert "no checkpoint_latest to resume from" in _refused_resume(cfg, run, ConfigError)


def test_a_hugging_face_clip_folder_with_truncated_weights_is_refused(tmp_path, tiny_clip_dir):
    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, folder)
    _truncate(folder / "model.safetensors")

    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(str(folder), device="cpu")
