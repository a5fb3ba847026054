"""The end of a run on the Train screen: it stays in sight with a "View results" button; long phases show time left."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.events import VALIDATE_STAGE, ProgressUpdated
from clipstudio.gui.screens import train_screen as train_screen_module
from clipstudio.gui.screens.train_screen import TrainScreen, format_phase

RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def screen(qtbot, app_state):
    widget = TrainScreen(app_state)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


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


def test_opening_another_run_hides_view_results(screen, app_state, tmp_path):
    screen._run["run_dir"] = str(tmp_path / "trained")
    screen.view_results_button.show()
    app_state.set_run(str(tmp_path / "trained"))
    assert screen.view_results_button.isVisible()
    app_state.set_run(str(tmp_path / "another"))
    assert not screen.view_results_button.isVisible()
