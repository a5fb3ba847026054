"""The background jobs of a screen: one ``TaskWorker`` per job, started, counted and stopped together."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QWidget

from clipstudio.engine.events import ProgressUpdated
from clipstudio.gui.errors import show_error
from clipstudio.gui.phases import PhaseTracker
from clipstudio.gui.workers import Job, TaskWorker


class ScreenJobs(QObject):
    """The background jobs of one screen: start, count and stop them (one TaskWorker per job)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workers: list[TaskWorker] = []
        self._status_label: QLabel | None = None
        self._progress_suffix = ""
        self._phase = PhaseTracker()

    def show_status_on(self, label: QLabel, *, progress_suffix: str = "") -> None:
        """Jobs started without their own ``failed`` / ``progressed`` slots report on ``label``:
        progress as text, a failure in red plus the error dialog."""
        self._status_label = label
        self._progress_suffix = progress_suffix

    def _on_job_progressed(self, event: object) -> None:
        if isinstance(event, ProgressUpdated) and self._status_label is not None:
            text = self._phase.text(event, time.monotonic())
            self._status_label.setText(f"{text}{self._progress_suffix}")

    def _on_job_failed(self, message: str, details: str) -> None:
        if self._status_label is not None:
            self._status_label.setText(f"<span style='color:#c62828'>{message}</span>")
        parent = self.parent()
        show_error(parent if isinstance(parent, QWidget) else None, message, details)

    def start(
        self,
        job: Job,
        *,
        name: str,
        succeeded: Callable[[Any], None],
        failed: Callable[[str, str], None] | None = None,
        progressed: Callable[[object], None] | None = None,
        finished: Callable[[], None] | None = None,
    ) -> TaskWorker:
        worker = TaskWorker(job, name=name)
        worker.succeeded.connect(succeeded)
        if failed is None and self._status_label is not None:
            failed = self._on_job_failed
        if failed is not None:
            worker.failed.connect(failed)
        if progressed is None and self._status_label is not None:
            progressed = self._on_job_progressed
        if progressed is not None:
            worker.event_emitted.connect(progressed)
        worker.finished.connect(lambda w=worker: self._on_worker_finished(w))
        if finished is not None:
            worker.finished.connect(finished)
        self._workers.append(worker)
        worker.start()
        return worker

    def _on_worker_finished(self, worker: TaskWorker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        worker.wait()  # `finished` can arrive a moment before the thread has fully ended
        worker.deleteLater()

    def busy(self, name: str | None = None) -> bool:
        return any(w.isRunning() and (name is None or w.name == name) for w in self._workers)

    def cancel(self, name: str | None = None) -> None:
        for worker in self._workers:
            if name is None or worker.name == name:
                worker.cancel()

    def shutdown(self) -> None:
        """Cancel every job and wait for its thread to end."""
        for worker in list(self._workers):
            worker.cancel()
        for worker in list(self._workers):
            worker.wait()
