"""The main window: screens, navigation, opening datasets and runs, recent paths, closing, start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from clipstudio.engine.runs.layout import CONFIG_FILE, RUN_FILE
from clipstudio.gui import main_window as main_window_module
from clipstudio.gui.errors import ScreenErrorPage
from clipstudio.gui.main_window import MainWindow, detect_device
from clipstudio.gui.screens import SCREENS
from clipstudio.gui.settings import MAX_RECENT, AppSettings

REPO = Path(__file__).resolve().parents[2]


class FakeScreen(QWidget):
    """Stands in for a screen that isn't written yet (or to control busy())."""

    title = "Fake"
    icon_name = "data"

    def __init__(self, state=None, parent=None, *, is_busy=False):
        super().__init__(parent)
        self.is_busy = is_busy
        self.opened: list[str] = []
        self.shutdowns = 0

    def busy(self) -> bool:
        return self.is_busy

    def shutdown(self) -> None:
        self.shutdowns += 1

    def open_dataset(self, path: str) -> None:
        self.opened.append(path)


def _drop(window: QWidget, paths: list[Path]) -> tuple[bool, bool]:
    """Drag ``paths`` onto ``window``; returns (drag accepted, drop accepted)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    actions, button, mods = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(50, 50), actions, mime, button, mods)  # Qt: QPoint here, QPointF below
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(QPointF(50, 50), actions, mime, button, mods)
    QApplication.sendEvent(window, drop)
    return enter.isAccepted(), drop.isAccepted()


def _recording_data_screen(window: MainWindow, monkeypatch) -> list[str]:
    """Calls to the Data screen's open_dataset, without reading anything."""
    opened: list[str] = []
    data = window.screen_for("data")
    if data is None:
        monkeypatch.setitem(window.screens, "data", FakeScreen())
        return window.screens["data"].opened
    monkeypatch.setattr(data, "open_dataset", opened.append)
    return opened


def test_window_has_every_screen_or_a_clear_error_page(main_window):
    assert main_window.nav.count() == main_window.stack.count() == len(SCREENS)
    for key, _spec in SCREENS:
        page = main_window.page(key)
        if key in main_window.screen_errors:
            assert isinstance(page, ScreenErrorPage) and "Traceback" in page.details
        else:
            assert page is main_window.screen_for(key)
            assert callable(page.busy) and callable(page.shutdown)
    assert main_window.windowTitle() == "CLIP Studio"


def test_a_broken_screen_gets_an_error_page_and_the_rest_still_work(qtbot, monkeypatch, message_boxes):
    monkeypatch.setattr(
        main_window_module,
        "SCREENS",
        [
            ("data", f"{__name__}:FakeScreen"),
            ("model", "clipstudio.gui.screens.no_such_screen:NoSuchScreen"),
            ("train", f"{__name__}:_ScreenThatRaises"),
        ],
    )
    window = MainWindow(detect_device=False)
    qtbot.addWidget(window)
    assert isinstance(window.screen_for("data"), FakeScreen)
    assert isinstance(window.page("model"), ScreenErrorPage)
    assert "no_such_screen" in window.screen_errors["model"]
    assert "the constructor broke" in window.screen_errors["train"]
    window.show_screen("train")
    assert window.current_screen_key() == "train"


class _ScreenThatRaises(QWidget):
    def __init__(self, state, parent=None):
        raise RuntimeError("the constructor broke")


def test_ctrl_number_switches_screens(main_window, qtbot):
    main_window.activateWindow()
    qtbot.waitActive(main_window)
    for index in reversed(range(len(SCREENS))):
        qtbot.keyClick(main_window, Qt.Key(Qt.Key.Key_1 + index), Qt.KeyboardModifier.ControlModifier)
        assert main_window.stack.currentIndex() == index
        assert main_window.nav.currentRow() == index


def test_clicking_the_navigation_switches_screens(main_window):
    main_window.nav.setCurrentRow(2)
    assert main_window.current_screen_key() == SCREENS[2][0]


def test_dropping_a_folder_opens_it_in_the_data_screen(main_window, monkeypatch, sample_dir):
    opened = _recording_data_screen(main_window, monkeypatch)
    main_window.show_screen(SCREENS[-1][0])
    assert _drop(main_window, [sample_dir]) == (True, True)
    assert opened == [str(sample_dir)]
    assert main_window.current_screen_key() == "data"
    assert AppSettings().recent_datasets() == [str(sample_dir)]


def test_dropping_an_annotation_file_opens_it(main_window, monkeypatch, tmp_path):
    opened = _recording_data_screen(main_window, monkeypatch)
    captions = tmp_path / "captions.jsonl"
    captions.write_text("{}\n")
    assert _drop(main_window, [captions]) == (True, True)
    assert opened == [str(captions)]


def test_dropping_an_image_file_is_refused(main_window, monkeypatch, sample_dir):
    opened = _recording_data_screen(main_window, monkeypatch)
    image = next((sample_dir / "normal").glob("*.png"))
    assert _drop(main_window, [image]) == (False, False)
    assert opened == []


def test_recent_datasets_are_deduplicated_capped_and_pruned(tmp_path):
    settings = AppSettings()
    folders = [tmp_path / f"set{i}" for i in range(MAX_RECENT + 2)]
    for folder in folders:
        folder.mkdir()
        settings.add_recent_dataset(str(folder))
    settings.add_recent_dataset(str(folders[5]) + os.sep)  # same folder, written differently
    recent = settings.recent_datasets()
    assert len(recent) == MAX_RECENT
    assert recent[0] == str(folders[5])
    assert recent.count(str(folders[5])) == 1
    folders[-1].rmdir()
    assert str(folders[-1]) not in AppSettings().recent_datasets()
    assert len(AppSettings().recent_datasets()) == MAX_RECENT - 1


def test_recent_datasets_menu_reopens_a_dataset(main_window, monkeypatch, sample_dir):
    opened = _recording_data_screen(main_window, monkeypatch)
    main_window.settings.add_recent_dataset(str(sample_dir))
    main_window.recent_datasets_menu.aboutToShow.emit()
    [action] = main_window.recent_datasets_menu.actions()
    assert action.text() == str(Path("samples", "chest_xray"))  # parent/folder: many sets share a name
    assert action.toolTip() == str(sample_dir)
    action.trigger()
    assert opened == [str(sample_dir)]


def test_opening_a_run_sets_it_and_shows_results(main_window, tmp_path, message_boxes):
    run = tmp_path / "run1"
    run.mkdir()
    (run / RUN_FILE).write_text(json.dumps({"method": "full"}))
    (run / CONFIG_FILE).write_text("{}")
    assert main_window.open_run(str(run))
    assert main_window.state.run_dir == str(run)
    assert main_window.current_screen_key() == "results"
    assert AppSettings().recent_runs() == [str(run)]


def test_opening_a_folder_that_is_not_a_run_says_so(main_window, tmp_path, message_boxes):
    assert not main_window.open_run(str(tmp_path))
    assert "not a training run folder" in message_boxes.texts()[0]
    assert main_window.state.run_dir == ""


def test_status_messages_appear_in_the_status_bar(main_window):
    main_window.state.post_status("Read 48 images")
    assert main_window.statusBar().currentMessage() == "Read 48 images"


def test_a_message_about_one_screen_goes_when_the_user_goes_to_another(main_window):
    main_window.show_screen("train")
    main_window.state.post_status("Training finished. Press View results on the Train screen.")
    main_window.show_screen("data")
    assert main_window.statusBar().currentMessage() == ""
    main_window.state.post_status("Training finished. Press View results on the Train screen.")
    main_window.show_screen("results")  # Results says what it shows, here that it needs a dataset
    message = main_window.statusBar().currentMessage()
    assert "View results" not in message and "dataset" in message.lower()


def test_title_names_the_open_dataset_by_parent_and_folder(main_window, sample_dir):
    from clipstudio.engine.data import load_dataset

    main_window.state.set_dataset(load_dataset(sample_dir), str(sample_dir))
    # The app name ends the title, so platforms that append the display name don't repeat it.
    assert main_window.windowTitle() == f"{Path('samples', 'chest_xray')} — CLIP Studio"
    assert AppSettings().recent_datasets() == [str(sample_dir)]


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_closing_while_training_asks_first(qtbot, main_window, monkeypatch, message_boxes, answer):
    from PySide6.QtWidgets import QMessageBox

    message_boxes.answer = getattr(QMessageBox.StandardButton, answer)
    busy = FakeScreen(is_busy=True)
    monkeypatch.setitem(main_window.screens, "train", busy)
    others = [s for k, s in main_window.screens.items() if k != "train"]
    for screen in others:
        monkeypatch.setattr(screen, "shutdown", lambda s=screen: setattr(s, "_test_shut", True))

    closed = main_window.close()

    assert message_boxes.texts() == ["Training is running. Stop it and quit?"]
    if answer == "No":
        assert not closed and main_window.isVisible() and busy.shutdowns == 0
    else:  # the window closes once the work has stopped (tests/gui/test_main_window_quit.py)
        qtbot.waitUntil(lambda: not main_window.isVisible(), timeout=5_000)
        assert busy.shutdowns == 1
        assert all(getattr(s, "_test_shut", False) for s in others)
        assert AppSettings()._qs.value("window/geometry") is not None


def test_closing_when_idle_does_not_ask(main_window, message_boxes):
    assert main_window.close()
    assert message_boxes.shown == []


def test_device_is_named_in_words():
    device = detect_device(lambda event: None, lambda: False)
    assert device == "CPU" or device.startswith("GPU: ")


@pytest.mark.slow
def test_app_main_opens_the_window_with_a_dataset_and_closes(qtbot, monkeypatch, sample_dir, message_boxes):
    from clipstudio.gui import app as app_module

    opened = []
    monkeypatch.setattr(MainWindow, "open_dataset", lambda self, path: opened.append(path))
    QApplication.instance().setQuitOnLastWindowClosed(True)

    def close_windows():
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                widget.close()

    QTimer.singleShot(300, close_windows)
    QTimer.singleShot(5000, QApplication.quit)  # a safety net, should the close not quit
    assert app_module.main([str(sample_dir)]) == 0
    assert opened == [str(sample_dir)]
    log_text = (Path(os.environ["CLIPSTUDIO_HOME"]) / "logs" / "clipstudio.log").read_text(encoding="utf-8")
    assert "window shown" in log_text


def test_building_the_window_does_not_import_torch():
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from clipstudio.gui.main_window import MainWindow\n"
        "window = MainWindow()\n"
        "window.show(); app.processEvents()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
        "window.shutdown()\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", "a screen imports torch/transformers at import time"


@pytest.mark.slow  # the demo loads the built-in model
def test_bare_clipstudio_without_a_display_runs_the_headless_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(CLIPSTUDIO_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-m", "clipstudio"], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert "headless demo" in out.stdout
    assert "Prompt sets compared" in out.stdout
    report = json.loads((tmp_path / "demo" / "demo_report.json").read_text(encoding="utf-8"))
    assert report["health"]["n_images"] == 48
    assert report["health"]["classes"] == {"normal": 24, "pneumonia": 24}
    assert len(report["prompt_sets"]) == 3 and report["zero_shot"]["n"] == 48
    assert len(report["search"]["hits"]) == 5
    probe = report["linear_probe"]
    assert probe["status"] == "completed"
    assert probe["val_balanced_acc_after"] >= probe["val_balanced_acc_before"]


def test_about_names_the_version_and_the_licences(main_window, message_boxes):
    from clipstudio import __version__

    main_window.show_about()
    [(kind, text, _details)] = message_boxes.shown
    assert kind == "about"
    assert __version__ in text and "CC BY 4.0" in text and "Apache-2.0" in text
    assert "not for clinical diagnosis" in text


def test_bare_clipstudio_with_a_display_opens_the_window(monkeypatch):
    from clipstudio.cli import main as cli
    from clipstudio.gui import app as app_module

    calls = []
    monkeypatch.setattr(sys, "argv", ["clipstudio"])
    monkeypatch.setattr(cli, "gui_unavailable_reason", lambda: "")
    monkeypatch.setattr(app_module, "main", lambda argv=None: calls.append(argv) or 0)
    assert cli.main() == 0
    assert calls == [[]]
