"""The Train screen: the settings form, inline validation, and real (tiny) training runs in a worker."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt

from clipstudio.engine.config import BUILTIN_LEARNING_RATES, DEFAULT_LEARNING_RATES, TrainConfig
from clipstudio.engine.events import (
    VALIDATE_STAGE,
    EpochEnded,
    EvalEnded,
    MethodChosen,
    ProgressUpdated,
    StepEnded,
    TrainingStatus,
    TrainStarted,
)
from clipstudio.engine.runs.layout import LATEST, find_checkpoint, read_run_info, resumable_step
from clipstudio.gui.screens import train_screen as train_screen_module
from clipstudio.gui.screens.train_screen import NO_DATASET, TrainScreen, format_epoch, format_phase
from clipstudio.gui.widgets.train_form import TOOLTIPS, TrainForm
from clipstudio.gui.widgets.train_presets import CUSTOM, PRESETS

RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def form(qtbot):
    widget = TrainForm()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def screen(open_screen, app_state):
    return open_screen(TrainScreen, app_state, show=True)


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
    form.set_config(TrainConfig())
    assert form.to_config(TrainConfig()) == TrainConfig()
    assert form.learning_rate.text() == ""
    assert "0.0001" in form.learning_rate.placeholderText()  # the built-in model's own rate for full fine-tuning
    form.method.setCurrentIndex(form.method.findData("linear_probe"))
    assert "0.001" in form.learning_rate.placeholderText()
    assert not form.lora_group.isVisibleTo(form.advanced_box)


def test_every_field_has_a_tooltip_with_its_default(form):
    for name, widget in form.fields().items():
        tip = widget.toolTip()
        assert tip == TOOLTIPS[name]
        assert "efault" in tip, f"{name}: tooltip does not state the default"


def test_presets_fill_the_form_and_edits_make_it_custom(form):
    form.preset.setCurrentText("Small dataset (LoRA, 10 epochs)")
    cfg = form.to_config()
    assert (cfg.method, cfg.epochs, cfg.learning_rate) == ("lora", 10, None)  # None: the model's or method's rate
    form.epochs.setValue(6)
    assert form.preset.currentText() == CUSTOM
    form.preset.setCurrentText("Quick check (linear probe, 10 epochs)")
    assert form.to_config().method == PRESETS["Quick check (linear probe, 10 epochs)"]["method"]


def test_the_empty_learning_rate_says_which_rate_the_model_will_train_at(screen):
    form = screen.form
    form.method.setCurrentIndex(form.method.findData("full"))
    assert form.learning_rate.placeholderText() == f"the model's rate for this method: {BUILTIN_LEARNING_RATES['full']:g}"
    hub_clip = SimpleNamespace(recommended_learning_rates={})  # a hub CLIP recommends nothing of its own
    screen.state.set_model(hub_clip, "openai/clip-vit-base-patch32")
    assert form.learning_rate.placeholderText() == f"method default: {DEFAULT_LEARNING_RATES['full']:g}"
    form.method.setCurrentIndex(form.method.findData("lora"))
    assert form.learning_rate.placeholderText() == f"method default: {DEFAULT_LEARNING_RATES['lora']:g}"


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


def test_what_auto_picked_shows_under_the_method_and_in_the_log_and_epochs_use_the_picked_method(screen):
    screen.form.method.setCurrentIndex(screen.form.method.findData("auto"))
    reason = "Auto picked the linear probe: a typical class has 4 training images (fewer than 70)."
    screen._on_worker_event_emitted(MethodChosen("linear_probe", reason))
    screen._on_worker_event_emitted(TrainStarted("run", "linear_probe", 10, 1, 10, 12, 6, "cpu"))
    screen._on_worker_event_emitted(EpochEnded(epoch=1, train_loss=0.5, train_acc=0.5, val_loss=0.6, val_acc=0.5,
                                               val_balanced_acc=0.5, val_mean_recall=None, lr=1e-3, seconds=1.0))

    assert screen.form.method_help.text() == f"This run: {reason}"
    log = screen.log.toPlainText()
    assert reason in log and "Training linear_probe on cpu" in log
    assert "L2 strength 1.0e-03" in log  # the probe's setting, not a learning rate


# --- the end of a run: it stays in sight; long phases show time left -------------------------------


def test_encoding_shows_as_a_phase_with_speed_and_time_left(screen, monkeypatch):
    clock = iter([100.0, 100.5, 102.0, 104.0])
    fake_time = SimpleNamespace(monotonic=lambda: next(clock), strftime=time.strftime)
    monkeypatch.setattr(train_screen_module, "time", fake_time)

    screen._on_worker_event_emitted(ProgressUpdated("encode images", 120, 480))  # 120 were cached
    first = screen.eta.text()
    screen._on_worker_event_emitted(ProgressUpdated("encode images", 130, 480))
    too_soon = screen.eta.text()
    screen._on_worker_event_emitted(ProgressUpdated("encode images", 240, 480))
    middle = screen.eta.text()
    screen._on_worker_event_emitted(ProgressUpdated("encode images", 120, 120))  # the validation images

    assert first == "Reading images: 120 of 480"
    assert too_soon.endswith(": 130 of 480")  # half a second in: no speed yet
    # 120 images in 2 s since the phase began: the cached ones don't count towards the speed.
    assert middle.endswith("240 of 480 · 60 images/s · about 4 s left")
    assert screen.eta.text().endswith(": 120 of 120")  # a new phase: its speed starts afresh
    assert (screen.progress.value(), screen.progress.maximum()) == (120, 120)
    assert "remembered" in screen.eta.toolTip()  # what the phase is, in words


def test_phase_lines_say_speed_and_time_left_in_words():
    assert format_phase("encode images", 480, 480, 12.0) == (
        "Reading images: 480 of 480 · 12 images/s"
    )
    assert format_phase("encode images", 100, 480, 3.8) == (
        "Reading images: 100 of 480 · 3.8 images/s · about 1 min 40 s left"
    )
    assert format_phase("check images", 3, 10, None) == "Check images: 3 of 10"
    assert format_phase(VALIDATE_STAGE, 32, 120, 2.5) == (
        "Checking the validation images: 32 of 120 · 2.5 images/s · about 35 s left"
    )


@pytest.mark.slow  # drives the main window through a whole (tiny) training run
def test_a_finished_run_stays_on_train_until_view_results_is_pressed(
    qtbot, main_window, app_state, make_class_folders, tmp_path, tiny_clip_dir
):
    from clipstudio.engine.data import load_dataset

    root = make_class_folders(tmp_path / "data", {"cyst": 8, "normal": 8, "tumor": 8})
    app_state.set_dataset(load_dataset(root), str(root))
    app_state.model_spec = str(tiny_clip_dir)
    statuses = []
    app_state.status_posted.connect(statuses.append)
    main_window.show_screen("train")
    train = main_window.screen_for("train")
    results = main_window.screen_for("results")
    train.form.set_config(TrainConfig(method="linear_probe", epochs=2, batch_size=8, output=str(tmp_path / "run")))
    assert not train.view_results_button.isVisible()

    with qtbot.waitSignal(app_state.run_changed, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(train.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not train.busy(), timeout=RUN_TIMEOUT_MS)

    assert main_window.current_screen_key() == "train"  # the final curves stay in sight
    assert train.plots.buffers["val_acc"].x[-1] == 2
    assert train.view_results_button.isVisible()
    assert "View results" in train.message.text()
    assert any("View results" in s for s in statuses)
    # Results scores the run in the background, so it is ready when the user goes there.
    qtbot.waitUntil(lambda: results.last_result is not None, timeout=RUN_TIMEOUT_MS)

    qtbot.mouseClick(train.view_results_button, Qt.MouseButton.LeftButton)

    assert main_window.current_screen_key() == "results"
    assert results.source_combo.currentText().startswith(f"Training run: {Path(app_state.run_dir).name}")
    assert results.last_result is not None and results.last_result.n == 24
    # The status bar now describes Results, not the Train screen's "Press View results".
    message = main_window.statusBar().currentMessage()
    assert message.startswith(f"Results: training run {Path(app_state.run_dir).name}") and "accuracy" in message


def test_opening_another_run_hides_view_results(screen, app_state, tmp_path):
    screen._run["run_dir"] = str(tmp_path / "trained")
    screen.view_results_button.show()
    app_state.set_run(str(tmp_path / "trained"))
    assert screen.view_results_button.isVisible()
    app_state.set_run(str(tmp_path / "another"))
    assert not screen.view_results_button.isVisible()


def test_after_an_epochs_validation_the_bar_and_line_count_steps_again(screen):
    """Validation progress moves the bar to images (120 of 120); the status after it is about steps."""
    screen._on_worker_event_emitted(TrainStarted("run", "full", 10, 15, 150, 480, 120, "cpu"))
    screen._on_worker_event_emitted(
        StepEnded(epoch=1, step=15, total_steps=150, loss=3.0, lr=1e-6, images_per_s=12.0)
    )
    screen._on_worker_event_emitted(ProgressUpdated(VALIDATE_STAGE, 120, 120))
    assert screen.eta.text().startswith("Checking the validation images: 120 of 120")
    screen._on_worker_event_emitted(EvalEnded(epoch=1, metrics=(("val_acc", 0.5),)))
    assert screen.eta.text() == "epoch 2/10 · step 15/150 · training…"
    assert (screen.progress.value(), screen.progress.maximum()) == (15, 150)
