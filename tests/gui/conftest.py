"""GUI test fixtures: isolated QSettings, a guard against threads left running, the main window.

For screen tests:
- ``main_window``: a shown ``MainWindow`` over a fresh ``AppState`` (``main_window.state``); screens by
  key via ``main_window.screen_for("data")``; closed (after ``shutdown()``) at teardown.
- ``app_state``: a fresh ``AppState`` on its own.
- ``sample_dir``: the bundled chest X-ray sample (class folders ``normal/`` and ``pneumonia/``).
- ``message_boxes``: QMessageBox never blocks; records each box shown. Set ``message_boxes.answer``
  to what ``QMessageBox.question`` returns (default Yes).
- ``worker_tracker``: every ``TaskWorker`` created during the test (autouse: a test that leaves one
  running fails).
- ``open_screen``: ``open_screen(DataScreen, state, size=(1200, 800), show=True)`` builds one screen
  on its own; at teardown it is shut down and must not be busy.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from clipstudio.engine.storage.paths import samples_dir
from clipstudio.gui.gc_policy import collect_due_generation
from clipstudio.gui.settings import APPLICATION, ORGANIZATION
from clipstudio.gui.workers import TaskWorker

THREAD_GRACE_S = 2.0


class WorkerTracker:
    """Remembers every TaskWorker built while it is installed."""

    def __init__(self) -> None:
        self.workers: list[TaskWorker] = []

    def running(self) -> list[TaskWorker]:
        return [w for w in self.workers if shiboken6.isValid(w) and w.isRunning()]

    def wait_all(self, timeout_s: float) -> list[TaskWorker]:
        """Let running workers finish (processing events meanwhile); returns those still running."""
        deadline = time.monotonic() + timeout_s
        while self.running() and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)
        return self.running()


@pytest.fixture(scope="session", autouse=True)
def _gc_on_the_gui_thread_only(qapp):
    """As in the app (clipstudio.gui.gc_policy): a GC pass in a worker thread would destroy Qt objects
    there and crash. Automatic collection is off; it runs here, on the GUI thread, after each test."""
    gc.disable()
    yield
    gc.enable()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test(qapp):
    """The app's policy (collect_due_generation): a full pass walks every object the session has made
    (torch, transformers, models) and costs ~0.5 s, so it runs only when generation 2 has grown by a quarter.

    Automatic collection is switched off again first: a test that ran the app's ``main()`` or a
    scripted app stopped its GuiThreadGarbageCollector, which turns it back on."""
    gc.disable()
    yield
    QApplication.processEvents()
    collect_due_generation()


@pytest.fixture(autouse=True)
def worker_tracker(monkeypatch, qapp):
    """Fails the test if a TaskWorker it created is still running at teardown."""
    tracker = WorkerTracker()
    original_init = TaskWorker.__init__

    def tracking_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        tracker.workers.append(self)

    monkeypatch.setattr(TaskWorker, "__init__", tracking_init)
    yield tracker
    leaked = tracker.wait_all(THREAD_GRACE_S)
    if leaked:
        names = [w.name for w in leaked]
        for worker in leaked:  # don't let the leak spill into the next test
            worker.cancel()
            worker.wait(10_000)
        pytest.fail(f"test left worker thread(s) running: {names}; call shutdown() / cancel() and wait()")


@pytest.fixture(autouse=True)
def _isolated_qsettings(tmp_path_factory, qapp):
    """QSettings (window geometry, recent paths) go to a per-test folder, never the user's."""
    folder = tmp_path_factory.mktemp("qsettings")
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(folder))
    return folder


@dataclass
class MessageBoxes:
    """What the patched QMessageBox showed: (kind, text, details) per box."""

    answer: QMessageBox.StandardButton = QMessageBox.StandardButton.Yes
    shown: list[tuple[str, str, str]] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [text for _kind, text, _details in self.shown]


@pytest.fixture
def message_boxes(monkeypatch) -> MessageBoxes:
    boxes = MessageBoxes()

    def fake_exec(box):
        boxes.shown.append(("exec", box.text(), box.detailedText()))
        return QMessageBox.StandardButton.Ok

    def static(kind, answer=None):
        def fake(parent, title, text, *args, **kwargs):
            boxes.shown.append((kind, text, ""))
            return boxes.answer if answer is None else answer

        return fake

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    monkeypatch.setattr(QMessageBox, "question", static("question"))
    for kind in ("information", "warning", "critical"):
        monkeypatch.setattr(QMessageBox, kind, static(kind, QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "about", static("about", None))
    return boxes


@pytest.fixture
def sample_dir():
    return samples_dir() / "chest_xray"


@pytest.fixture
def app_state(qapp):
    from clipstudio.gui.state import AppState

    return AppState()


@pytest.fixture
def main_window(qtbot, app_state):
    from clipstudio.gui.main_window import MainWindow

    window = MainWindow(app_state, detect_device=False)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.shutdown()  # cancels and waits for every screen's workers, so close() won't ask
    window.close()
    window.deleteLater()
    QApplication.processEvents()


@pytest.fixture
def open_screen(qtbot):
    """``open_screen(screen_class, state, size=None, show=False)``: the screen over ``state``, added to
    qtbot; shut down at teardown, after which it must not be busy."""
    opened = []

    def make(screen_class, state, size: tuple[int, int] | None = None, show: bool = False):
        widget = screen_class(state)
        qtbot.addWidget(widget)
        if size is not None:
            widget.resize(*size)
        if show:
            widget.show()
        opened.append(widget)
        return widget

    yield make
    for widget in opened:
        widget.shutdown()
        assert not widget.busy()


@pytest.fixture(scope="module")
def tiny_model(tiny_clip_dir):
    """The tiny CLIP model, loaded once per test module (tests may monkeypatch its methods)."""
    from clipstudio.engine.models import load_model

    return load_model(str(tiny_clip_dir), device="cpu")


@pytest.fixture
def state_with(tiny_model):
    """``state_with(root)``: an AppState with the dataset at ``root`` open and the tiny model loaded."""
    from clipstudio.engine.data import load_dataset
    from clipstudio.gui.state import AppState

    def make(root) -> AppState:
        app_state = AppState()
        app_state.set_dataset(load_dataset(root), str(root))
        app_state.set_model(tiny_model, "tiny")
        return app_state

    return make
