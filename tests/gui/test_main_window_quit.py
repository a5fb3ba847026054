"""Quitting while work runs: "Stopping…" on screen, the window keeps painting, then it closes (bounded wait)."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from clipstudio.gui import main_window as main_window_module
from clipstudio.gui.workers import TaskWorker


class SlowToStopScreen(QWidget):
    """A screen whose job, once told to stop, takes ``stop_s`` more seconds (a training saving its checkpoint)."""

    def __init__(self, stop_s: float, *, honours_stop: bool = True) -> None:
        super().__init__()
        self.told_to_stop = False

        def job(_callback, should_stop):
            started = time.monotonic()
            while not should_stop():
                if not honours_stop and time.monotonic() - started > stop_s:
                    return "done"  # a job that never checks: it ends on its own
                time.sleep(0.01)
            self.told_to_stop = True
            time.sleep(stop_s)
            return "saved"

        self.worker = TaskWorker(job, name="slow training")
        self.worker.start()

    def busy(self) -> bool:
        return self.worker.isRunning()

    def shutdown(self) -> None:
        self.worker.cancel()
        self.worker.wait()


def _busy_window(main_window, monkeypatch, screen: SlowToStopScreen) -> None:
    monkeypatch.setitem(main_window.screens, "train", screen)


def test_quitting_while_training_shows_stopping_and_keeps_painting_until_it_has_stopped(
    qtbot, main_window, monkeypatch, message_boxes
):
    screen = SlowToStopScreen(stop_s=1.0)
    _busy_window(main_window, monkeypatch, screen)
    ticks = []
    ticker = QTimer(interval=20)
    ticker.timeout.connect(lambda: ticks.append(screen.busy()))
    ticker.start()

    assert not main_window.close()  # not yet: the work stops first

    assert message_boxes.texts() == ["Training is running. Stop it and quit?"]
    stopping = main_window._stopping
    assert stopping is not None and stopping.isVisible() and stopping.labelText().startswith("Stopping…")
    assert "saves its progress" in stopping.labelText()
    assert main_window.statusBar().currentMessage() == "Stopping…"
    assert not main_window.centralWidget().isEnabled()
    qtbot.waitUntil(lambda: not main_window.isVisible(), timeout=10_000)
    ticker.stop()
    assert screen.told_to_stop and not screen.busy()
    assert ticks.count(True) >= 20  # the event loop ran (about 50 ticks) while the job was stopping


def test_closing_again_while_stopping_neither_asks_nor_closes(qtbot, main_window, monkeypatch, message_boxes):
    screen = SlowToStopScreen(stop_s=0.5)
    _busy_window(main_window, monkeypatch, screen)
    main_window.close()
    assert not main_window.close()
    assert len(message_boxes.shown) == 1 and main_window.isVisible()
    qtbot.waitUntil(lambda: not main_window.isVisible(), timeout=10_000)


def test_work_that_does_not_stop_in_time_is_left_behind(qtbot, main_window, monkeypatch, message_boxes):
    monkeypatch.setattr(main_window_module, "QUIT_WAIT_S", 0.3)
    left_behind = []
    monkeypatch.setattr(main_window, "_quit_anyway", left_behind.append)
    screen = SlowToStopScreen(stop_s=1.5, honours_stop=False)
    _busy_window(main_window, monkeypatch, screen)
    started = time.monotonic()

    main_window.close()

    qtbot.waitUntil(lambda: bool(left_behind), timeout=5_000)
    assert left_behind == [["slow training"]]
    assert time.monotonic() - started < 1.4  # it did not wait for the job
    screen.worker.wait()
