"""A screen's background jobs: progress and failures on its status label, cancelled and awaited together."""

from __future__ import annotations

import time
from types import SimpleNamespace

from PySide6.QtWidgets import QLabel, QWidget

from clipstudio.engine.events import ProgressUpdated
from clipstudio.gui.screen_jobs import ScreenJobs


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


def test_job_progress_is_worded_with_speed_and_time_left(qtbot, monkeypatch):
    import clipstudio.gui.screen_jobs as screen_jobs_module

    clock = iter([10.0, 12.0])
    monkeypatch.setattr(screen_jobs_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    label = QLabel()
    jobs = ScreenJobs()
    jobs.show_status_on(label, progress_suffix=" (scoring)")
    jobs._on_job_progressed(ProgressUpdated(stage="encode images", done=0, total=300))
    assert label.text() == "Reading images: 0 of 300 (scoring)"
    jobs._on_job_progressed(ProgressUpdated(stage="encode images", done=60, total=300))
    assert label.text() == "Reading images: 60 of 300 · 30 images/s · about 8 s left (scoring)"
    jobs._on_job_progressed(object())  # not progress: the line stays
    assert label.text().startswith("Reading images: 60 of 300")
