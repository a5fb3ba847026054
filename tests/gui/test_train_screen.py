"""The Train screen: the settings form, inline validation, and real (tiny) training runs in a worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.events import EpochEnded, EvalEnded, StepEnded, TrainingStatus, TrainStarted
from clipstudio.engine.runs.layout import LATEST, find_checkpoint, read_run_info, resumable_step
from clipstudio.gui.screens.train_screen import NO_DATASET, TrainScreen, format_epoch
from clipstudio.gui.widgets.train_form import CUSTOM, PRESETS, TOOLTIPS, TrainForm

RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def form(qtbot):
    widget = TrainForm()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def screen(qtbot, app_state):
    widget = TrainScreen(app_state)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def class_data(tmp_path, make_class_folders, app_state, tiny_clip_dir):
    """A 3-class generated dataset opened in the app state, with the tiny CLIP model chosen."""
    from clipstudio.engine.data import load_dataset

    root = make_class_folders(tmp_path / "data", {"cyst": 16, "normal": 16, "tumor": 16})
    app_state.set_dataset(load_dataset(root), str(root))
    app_state.model_spec = str(tiny_clip_dir)
    return root


def _settings(screen: TrainScreen, method: str, epochs: int, batch: int = 8) -> None:
    cfg = TrainConfig(method=method, epochs=epochs, batch_size=batch, amp=False, warmup_steps=2)
    cfg.output = str(Path(screen.state.dataset_path).parent / f"run-{method}")
    screen.form.set_config(cfg)


def _wait_idle(qtbot, screen: TrainScreen) -> None:
    qtbot.waitUntil(lambda: not screen.busy() and screen._worker is None, timeout=RUN_TIMEOUT_MS)


# --- the form ------------------------------------------------------------------------------------


def test_form_round_trips_a_config(form):
    cfg = TrainConfig(
        method="lora",
        epochs=7,
        batch_size=16,
        learning_rate=3e-4,
        weight_decay=0.05,
        warmup_steps=10,
        img_size=64,
        augmentation="standard",
        amp=False,
        loss="clip",
        seed=7,
        output="/tmp/somewhere",
    )
    cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout = 4, 16.0, 0.1
    cfg.early_stopping.patience, cfg.early_stopping.min_delta, cfg.early_stopping.monitor = (
        3,
        0.01,
        "val_loss",
    )
    cfg.cv.use_cv, cfg.cv.n_splits = True, 4
    form.set_config(cfg)
    assert form.to_config(TrainConfig()) == cfg
    assert form.lora_group.isVisibleTo(form.advanced_box)  # under "Advanced settings"


def test_defaults_round_trip_and_blank_learning_rate_means_method_default(form):
    assert form.to_config(TrainConfig()) == TrainConfig()
    assert form.learning_rate.text() == ""
    assert "1e-05" in form.learning_rate.placeholderText()
    form.method.setCurrentIndex(form.method.findData("linear_probe"))
    assert "0.001" in form.learning_rate.placeholderText()
    assert not form.lora_group.isVisibleTo(form.advanced_box)


def test_every_field_has_a_tooltip_with_its_default(form):
    for name, widget in form.fields().items():
        tip = widget.toolTip()
        assert tip == TOOLTIPS[name]
        assert "efault" in tip, f"{name}: tooltip does not state the default"


def test_presets_fill_the_form_and_edits_make_it_custom(form):
    form.preset.setCurrentText("Full fine-tune (5 epochs, lr 1e-5)")
    cfg = form.to_config()
    assert (cfg.method, cfg.epochs, cfg.learning_rate) == ("full", 5, 1e-5)
    form.epochs.setValue(6)
    assert form.preset.currentText() == CUSTOM
    form.preset.setCurrentText("Quick check (linear probe, 10 epochs)")
    assert form.to_config().method == PRESETS["Quick check (linear probe, 10 epochs)"]["method"]


def test_invalid_values_show_inline_error_and_disable_start(screen, class_data):
    assert screen.start_button.isEnabled()
    screen.form.learning_rate.setText("fast")
    assert not screen.start_button.isEnabled()
    assert "not a number" in screen.message.text()
    screen.form.learning_rate.setText("")
    screen.form.method.setCurrentIndex(screen.form.method.findData("lora"))
    screen.form.lora_rank.setValue(0)
    assert not screen.start_button.isEnabled()
    assert "lora.rank must be at least 1" in screen.message.text()
    screen.form.lora_rank.setValue(8)
    assert screen.start_button.isEnabled()
    assert screen.message.text() == ""


def test_without_a_dataset_start_asks_for_one(screen):
    assert not screen.start_button.isEnabled()
    assert screen.message.text() == NO_DATASET
    assert screen.start() is False


def test_config_takes_dataset_model_prompts_and_splits_from_the_app(screen, class_data, app_state):
    app_state.split_settings = {"val_fraction": 0.3, "test_fraction": 0.1, "seed": 5, "group_regex": None}
    cfg = screen.build_config()
    assert cfg.data.path == str(class_data)
    assert (cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed) == (0.3, 0.1, 5)
    assert cfg.model.spec == app_state.model_spec
    assert cfg.prompts.templates == app_state.prompts.templates


# --- training runs -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["linear_probe", "full"])
def test_short_run_draws_curves_and_opens_the_run(qtbot, screen, class_data, app_state, method):
    _settings(screen, method, epochs=2)
    statuses = []
    app_state.status_posted.connect(statuses.append)
    with qtbot.waitSignal(app_state.run_changed, timeout=RUN_TIMEOUT_MS) as run_changed:
        assert screen.start()
        assert screen.busy()
        assert not screen.start_button.isEnabled() and screen.stop_button.isEnabled()
    _wait_idle(qtbot, screen)
    run_dir = Path(run_changed.args[0])
    assert app_state.run_dir == str(run_dir)
    assert find_checkpoint(run_dir, LATEST) is not None
    plots = screen.plots
    assert plots.buffers["train_loss"].size >= 2
    assert plots.buffers["lr"].size >= 2
    assert list(plots.buffers["val_acc"].x) == [0, 1, 2]  # epoch 0 = the starting model
    assert "Epoch 2/2" in screen.log.toPlainText()
    assert any("Training finished" in s for s in statuses)
    assert screen.start_button.isEnabled() and not screen.resume_button.isEnabled()


def test_hand_written_class_texts_are_saved_with_the_run(qtbot, screen, class_data, app_state):
    from clipstudio.engine.prompts import PromptSet

    app_state.set_prompts(PromptSet(class_texts={"cyst": ["a fluid-filled cyst"]}))
    _settings(screen, "linear_probe", epochs=1)
    with qtbot.waitSignal(app_state.run_changed, timeout=RUN_TIMEOUT_MS) as run_changed:
        screen.start()
    _wait_idle(qtbot, screen)
    assert read_run_info(run_changed.args[0])["class_texts"]["cyst"] == ["a fluid-filled cyst"]


@pytest.mark.slow
def test_stop_saves_and_resume_continues_to_completion(qtbot, screen, class_data, app_state):
    _settings(screen, "full", epochs=2, batch=4)
    screen.start()
    # Hold the trainer at its first step event until Stop is pressed, so Stop lands mid-run.
    gate = threading.Event()

    def hold(event):
        if isinstance(event, StepEnded):
            gate.wait(RUN_TIMEOUT_MS / 1000)

    screen._worker.event_emitted.connect(hold, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: screen.plots.buffers["train_loss"].size > 0, timeout=RUN_TIMEOUT_MS)
    screen.stop()
    gate.set()
    _wait_idle(qtbot, screen)
    run_dir = Path(screen.form.output.text())
    assert screen._run["ended"].status is TrainingStatus.CANCELLED
    step = resumable_step(run_dir)
    assert step is not None and step > 0
    assert find_checkpoint(run_dir, LATEST) is not None
    assert f"Resume continues from step {step}" in screen.eta.text()
    assert screen.resume_button.isEnabled()
    assert app_state.run_dir == ""  # a stopped run is not a result yet

    with qtbot.waitSignal(app_state.run_changed, timeout=RUN_TIMEOUT_MS):
        assert screen.resume()
    _wait_idle(qtbot, screen)
    assert screen._run["ended"].status is TrainingStatus.COMPLETED
    assert app_state.run_dir == str(run_dir)
    assert screen.plots.buffers["val_acc"].x[-1] == 2
    assert screen.plots.buffers["train_loss"].x[0] <= step  # the past of the run is drawn too
    assert not screen.resume_button.isEnabled()


def test_resume_run_rejects_a_folder_without_checkpoint(screen, tmp_path):
    assert screen.choose_resume_run(str(tmp_path)) is False
    assert LATEST in screen.message.text()
    assert not screen.resume_button.isEnabled()


def test_a_failing_run_shows_an_error_dialog_and_logs_it(qtbot, screen, class_data, app_state, message_boxes):
    app_state.model_spec = str(Path(class_data) / "no-such-model")
    _settings(screen, "linear_probe", epochs=1)
    screen.start()
    _wait_idle(qtbot, screen)
    qtbot.waitUntil(lambda: bool(message_boxes.shown), timeout=10_000)
    assert "Error:" in screen.log.toPlainText()
    assert app_state.run_dir == ""
    assert screen.start_button.isEnabled()


def test_the_log_line_of_an_epoch_shows_its_validation_metrics():
    pairs = EpochEnded(epoch=3, train_loss=0.25, train_acc=0.5, val_loss=0.75, val_acc=0.5, val_balanced_acc=None,
                       val_mean_recall=0.625, lr=2e-5, seconds=75.0)
    assert format_epoch(pairs, 4) == (
        "Epoch 3/4: train loss 0.2500 · val loss 0.7500 · val acc 0.500 · mean R@K 0.625 · lr 2.00e-05 · 1 min 15 s"
    )


def test_after_the_starting_model_is_validated_the_status_says_training_not_validating(screen):
    """On a CPU the first optimizer steps of a full fine-tune can take a while; the line under the
    progress bar must not keep saying "validating…" once validation is over."""
    screen._on_worker_event_emitted(TrainStarted("run", "full", 10, 15, 150, 480, 120, "cpu"))
    assert screen.eta.text().endswith("validating…")
    screen._on_worker_event_emitted(EvalEnded(epoch=0, metrics=(("val_acc", 0.4),)))
    assert screen.eta.text() == "epoch 1/10 · step 0/150 · training…"
    screen._on_worker_event_emitted(
        StepEnded(epoch=1, step=1, total_steps=150, loss=3.0, lr=1e-6, images_per_s=12.0)
    )
    assert screen.eta.text().startswith("epoch 1/10 · step 1/150 · 12 img/s")
