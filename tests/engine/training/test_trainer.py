"""The Trainer end to end on tiny models: run folders, methods, cancel, resume, failure, early stop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from clipstudio.engine.events import (
    CheckpointSaved,
    EpochEnded,
    EvalEnded,
    StepEnded,
    TrainEnded,
    TrainStarted,
)
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.runs.layout import (
    find_checkpoint,
    is_run_folder,
    read_history,
    read_run_config,
    run_start_model_spec,
)
from clipstudio.engine.training.checkpoint import load_train_state
from clipstudio.engine.training.trainer import Trainer


def _metrics_losses(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_full_fine_tuning_lowers_the_loss_and_writes_a_loadable_run_folder(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=4, save_best=True)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed", result.message
    run = result.run_dir
    history = read_history(run)
    assert history["train_loss"][-1] < history["train_loss"][0]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc", "lr", "wall_time"):
        assert len(history[key]) == 4, key
    assert is_run_folder(run) and not is_run_folder(tiny_dual_dir)
    assert read_run_config(run) == cfg
    assert run_start_model_spec(run) == str(tiny_dual_dir)
    model = load_run_model(run, "latest", device="cpu")
    assert model.encode_texts(["a photo of red."]).shape == (1, 16)
    best = load_run_model(run, device="cpu")  # "best" by default
    assert best.fingerprint() == load_model(str(run / "checkpoint_best"), device="cpu").fingerprint()
    # Every event is plain data, and they come in the documented order.
    for event in recorder.events:
        json.dumps(dataclasses.asdict(event))
    kinds = [type(e) for e in recorder.events if type(e) in (TrainStarted, EpochEnded, TrainEnded)]
    assert kinds == [TrainStarted, *[EpochEnded] * 4, TrainEnded]
    assert recorder.of(EvalEnded)[0].epoch == 0  # the starting model is evaluated first
    assert {e.kind for e in recorder.of(CheckpointSaved)} == {"latest", "best"}
    assert len(_metrics_losses(run)) == 4 * TrainStartedSteps(recorder)


def TrainStartedSteps(recorder) -> int:  # noqa: N802 - reads like the event field
    return recorder.of(TrainStarted)[0].steps_per_epoch


@pytest.mark.slow
def test_lock_image_leaves_the_image_tower_unchanged(class_data, tiny_dual_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_dual_dir, method="lock_image", epochs=1)

    result = Trainer(cfg).fit()

    before = load_model(str(tiny_dual_dir), device="cpu").torch_module.state_dict()
    after = load_model(str(result.run_dir / "checkpoint_latest"), device="cpu").torch_module.state_dict()
    image_keys = [k for k in before if k.startswith(("image_backbone.", "image_projection."))]
    text_keys = [k for k in before if k.startswith(("text_encoder.", "text_projection."))]
    # BatchNorm running statistics included: the locked tower ran in eval mode.
    assert image_keys and all(torch.equal(before[k], after[k]) for k in image_keys)
    assert any(not torch.equal(before[k], after[k]) for k in text_keys)


@pytest.mark.slow  # three training runs
def test_cancel_mid_epoch_then_resume_matches_an_uninterrupted_run(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    # 12 training images, batch 4: 3 steps per epoch. Dropout (tiny BERT) and augmentation are on,
    # so torch's RNG, the data order and the augmentation stream must all be restored exactly.
    common = dict(epochs=3, batch_size=4, augmentation="standard")
    straight = Trainer(make_cfg(class_data, tiny_dual_dir, name="straight", **common)).fit()

    cfg = make_cfg(class_data, tiny_dual_dir, name="resumed", **common)
    trainer = Trainer(cfg, callbacks=[recorder], should_stop=lambda: trainer.steps_done >= 5)
    cancelled = trainer.fit()

    assert cancelled.status == "cancelled"
    assert recorder.events[-1] == TrainEnded(
        "cancelled", str(cancelled.run_dir), cancelled.best_metric, cancelled.message
    )
    state = load_train_state(find_checkpoint(cancelled.run_dir))
    assert (state["position"]["epoch"], state["position"]["batch_pos"], state["step"]) == (2, 2, 5)

    resumed_cfg = dataclasses.replace(cfg, resume_from=str(cancelled.run_dir))
    resumed = Trainer(resumed_cfg).fit()

    assert resumed.status == "completed"
    assert _metrics_losses(resumed.run_dir) == pytest.approx(_metrics_losses(straight.run_dir), rel=1e-5)
    assert resumed.history["train_loss"] == pytest.approx(straight.history["train_loss"], rel=1e-5)
    assert resumed.history["val_loss"] == pytest.approx(straight.history["val_loss"], rel=1e-5)


def test_non_finite_loss_fails_and_keeps_the_last_good_checkpoint(
    class_data, tiny_dual_dir, make_cfg, recorder, monkeypatch
):
    import clipstudio.engine.training.methods.contrastive as contrastive

    real_loss = contrastive.contrastive_loss
    calls = []

    def exploding_loss(logits, *args, **kwargs):
        loss = real_loss(logits, *args, **kwargs)
        if logits.requires_grad:  # training batches only, not validation
            calls.append(1)
            if len(calls) > 2:  # 2 batches per epoch: epoch 2's first batch
                return loss * float("nan")
        return loss

    monkeypatch.setattr(contrastive, "contrastive_loss", exploding_loss)
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=3, batch_size=6)
    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "failed"
    assert "NaN" in result.message
    assert recorder.events[-1].status == "failed"
    latest = find_checkpoint(result.run_dir)
    assert load_train_state(latest)["epoch"] == 1
    weights = load_model(str(latest), device="cpu").torch_module.state_dict()
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_early_stopping_stops_after_patience_epochs_without_improvement(class_data, tiny_dual_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_dual_dir, method="linear_probe", epochs=10)
    cfg.early_stopping.patience = 2
    cfg.early_stopping.min_delta = 10.0  # nothing can improve by that much: epoch 1 stays best

    result = Trainer(cfg).fit()

    assert result.status == "early_stopped"
    assert result.epochs_completed == 3
    assert result.history["best_epoch"] == 1


def test_pairs_train_on_captions_and_report_recall(pair_data, tiny_clip_dir, make_cfg, recorder):
    cfg = make_cfg(pair_data, tiny_clip_dir, epochs=1, batch_size=6)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    started = recorder.of(TrainStarted)[0]
    assert (started.n_train, started.n_val) == (12, 6)  # the val split comes from the dataset's own
    epoch = recorder.of(EpochEnded)[0]
    assert epoch.val_balanced_acc is None and 0 <= epoch.val_mean_recall <= 1
    assert set(result.history) >= {"val_i2t_R@1", "val_t2i_R@5", "val_mean_recall"}
    assert recorder.of(StepEnded)


def test_linear_probe_rejects_pair_data(pair_data, tiny_clip_dir, make_cfg):
    from clipstudio.engine.errors import ConfigError

    cfg = make_cfg(pair_data, tiny_clip_dir, method="linear_probe")
    with pytest.raises(ConfigError, match="class data"):
        Trainer(cfg).fit()


def test_a_run_folder_is_not_overwritten(class_data, tiny_dual_dir, make_cfg):
    from clipstudio.engine.errors import ConfigError

    cfg = make_cfg(class_data, tiny_dual_dir, method="linear_probe", epochs=1)
    Trainer(cfg).fit()
    with pytest.raises(ConfigError, match="already holds a training run"):
        Trainer(cfg).fit()


def test_training_never_uses_the_test_split(tmp_path, make_class_folders, tiny_dual_dir, make_cfg):
    data = make_class_folders(
        tmp_path / "split", {"train": {"red": 4, "green": 4}, "test": {"red": 3, "green": 3}}
    )
    cfg = make_cfg(data, tiny_dual_dir, method="linear_probe", epochs=1)

    result = Trainer(cfg).fit()

    splits = json.loads((result.run_dir / "splits.json").read_text(encoding="utf-8"))
    used = splits["train"] + splits["val"]
    assert len(used) == 8 and splits["val"]
    assert not any("test" in p.replace("\\", "/").split("/") for p in used)
    assert np.isfinite(result.history["val_loss"]).all()


def test_fp16_loss_scaling_path_trains_and_checkpoints_the_scaler(
    class_data, tiny_dual_dir, make_cfg, monkeypatch
):
    # Older GPUs get fp16 + GradScaler; exercise that path on the CPU.
    import clipstudio.engine.training.setup as train_setup
    from clipstudio.engine.training.optimizer import AmpPolicy

    monkeypatch.setattr(
        train_setup, "amp_policy", lambda device, enabled: AmpPolicy("cpu", torch.float16, True)
    )
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=1, amp=True, grad_accum=2, batch_size=4)

    result = Trainer(cfg).fit()

    assert result.status == "completed", result.message
    state = load_train_state(find_checkpoint(result.run_dir))
    assert state["scaler"]["scale"] > 0
    assert state["step"] == 2  # 3 batches, 2 per optimizer step


def test_cpu_training_on_a_busy_machine_times_its_thread_counts_and_gives_the_threads_back(
    class_data, tiny_dual_dir, make_cfg, recorder, monkeypatch
):
    import clipstudio.engine.training.trainer as trainer_module

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on a 2-core machine, whatever runs this
    monkeypatch.setattr(trainer_module, "OtherProcessesLoad", lambda: lambda: 1.0)  # another program: 1 core
    applied: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", applied.append)
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=3, batch_size=2)
    trainer = Trainer(cfg, callbacks=[recorder])

    result = trainer.fit()

    assert result.status == "completed", result.message
    assert trainer.threads.candidates == [2, 1]
    assert 1 in applied  # the single thread was tried on real steps...
    assert applied[-1] == 2  # ...and the run's end gives back the count it started with
    started = next(e for e in recorder.events if isinstance(e, TrainStarted))
    assert started.precision.startswith(("full precision (fp32) — ", "bf16 mixed precision — "))


def test_validation_reports_its_progress_so_a_slow_one_never_looks_hung(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    from clipstudio.engine.events import VALIDATE_STAGE, ProgressUpdated

    cfg = make_cfg(class_data, tiny_dual_dir, epochs=1, batch_size=2)
    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed", result.message
    started = next(e for e in recorder.events if isinstance(e, TrainStarted))
    validating = [e for e in recorder.events if isinstance(e, ProgressUpdated) and e.stage == VALIDATE_STAGE]
    assert {e.total for e in validating} == {started.n_val}
    finished = [e for e in validating if e.done == started.n_val]
    assert len(finished) == 2  # before the first step and after the epoch
    first_step = next(i for i, e in enumerate(recorder.events) if isinstance(e, StepEnded))
    assert recorder.events.index(validating[0]) < first_step


def test_stop_inside_a_step_abandons_it_and_resume_redoes_it_exactly(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    from clipstudio.engine.training.interrupt import checkpoint_layers

    common = dict(epochs=3, batch_size=4, augmentation="standard")
    straight = Trainer(make_cfg(class_data, tiny_dual_dir, name="straight", **common)).fit()

    cfg = make_cfg(class_data, tiny_dual_dir, name="stopped", **common)
    polls_after_step_4 = []

    def should_stop() -> bool:  # the user presses Stop while step 5's forward pass runs
        if trainer.steps_done == 4:
            polls_after_step_4.append(1)  # the 1st is the check between steps 4 and 5
        return len(polls_after_step_4) >= 3

    trainer = Trainer(cfg, callbacks=[recorder], should_stop=should_stop)
    stopped = trainer.fit()

    assert stopped.status == "cancelled"
    state = load_train_state(find_checkpoint(stopped.run_dir))
    assert (state["position"]["epoch"], state["position"]["batch_pos"], state["step"]) == (2, 1, 4)
    assert all(p.grad is None for p in trainer.method.module.parameters())
    assert len(checkpoint_layers(trainer.method.module)) > 2

    resumed = Trainer(dataclasses.replace(cfg, resume_from=str(stopped.run_dir))).fit()
    assert resumed.status == "completed"
    assert _metrics_losses(resumed.run_dir) == pytest.approx(_metrics_losses(straight.run_dir), rel=1e-5)
    assert resumed.history["val_loss"] == pytest.approx(straight.history["val_loss"], rel=1e-5)


def test_a_run_stopped_in_its_first_validation_resumes_by_finishing_it(class_data, tiny_dual_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=1, batch_size=4)
    started = []  # Stop pressed once training started: during the validation before the first step
    stopped = Trainer(
        cfg, callbacks=[lambda e: started.append(e) if isinstance(e, TrainStarted) else None],
        should_stop=lambda: bool(started),
    ).fit()
    assert stopped.status == "cancelled" and "first validation" in stopped.message

    resumed = Trainer(dataclasses.replace(cfg, resume_from=str(stopped.run_dir))).fit()
    assert resumed.status == "completed", resumed.message
    assert set(resumed.history["initial"]) >= {"val_loss", "val_acc"}
    assert read_history(resumed.run_dir)["initial"] == resumed.history["initial"]


def test_slow_steps_are_reported_whatever_log_every_steps_says(
    class_data, tiny_dual_dir, make_cfg, recorder, monkeypatch
):
    """At 3-10 s per CPU step, a report every 10 steps left the app's progress line still for a minute."""
    import clipstudio.engine.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "_SLOW_WINDOW_S", 0.0)  # every step counts as slow
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=1, batch_size=2, log_every_steps=10)
    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed", result.message
    steps = [e.step for e in recorder.events if isinstance(e, StepEnded)]
    assert steps and steps[0] == 1
    assert len(_metrics_losses(result.run_dir)) == steps[-1]  # one metrics line per step
