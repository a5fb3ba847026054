"""A screen's background jobs: progress and failures on its status label, cancelled and awaited together."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QLabel, QWidget

from clipstudio.engine.events import ProgressUpdated
from clipstudio.gui.screen_jobs import ScreenJobs, progress_text


def test_progress_and_failure_show_on_the_status_label(qtbot, message_boxes):
    parent = QWidget()
    qtbot.addWidget(parent)
    label = QLabel(parent)
    jobs = ScreenJobs(parent)
    jobs.show_status_on(label, progress_suffix=" (once)")

    def job(callback, _should_stop):
        callback(ProgressUpdated(stage="encode images", done=3, total=9))
        raise ValueError("boom")

    finished = []
    jobs.start(job, name="fails", succeeded=lambda _r: None, finished=lambda: finished.append(1))
    qtbot.waitUntil(lambda: bool(finished) and not jobs.busy(), timeout=60_000)
    assert "boom" in label.text()  # the failure replaced the progress text
    assert message_boxes.shown  # the failure also opened the error dialog


def test_shutdown_cancels_and_waits_for_every_job(qtbot):
    jobs = ScreenJobs()

    def job(_callback, should_stop):
        while not should_stop():
            time.sleep(0.01)
        return "stopped"

    jobs.start(job, name="a", succeeded=lambda _r: None)
    jobs.start(job, name="b", succeeded=lambda _r: None)
    assert jobs.busy("a") and jobs.busy()
    jobs.shutdown()
    assert not jobs.busy()


def test_progress_text_reads_progress_events_only():
    assert progress_text(ProgressUpdated(stage="encode texts", done=1, total=4)) == "Encode texts: 1/4"
    assert progress_text(object()) is None
