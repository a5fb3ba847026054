"""Background work for the GUI: one cancellable QThread per job (labelme / Orange3 style).

An engine job is a plain function ``fn(callback, should_stop) -> result``; ``TaskWorker`` runs it off
the GUI thread, forwards every engine event through the ``event_emitted`` signal (queued to the GUI
thread), and ends with exactly one of ``succeeded(result)``, ``failed(message, details)`` or
``cancelled()``. Cancellation is cooperative (``requestInterruption``); ``terminate()`` is never used.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from clipstudio.engine.errors import ClipStudioError

log = logging.getLogger(__name__)

Job = Callable[[Callable[[object], None], Callable[[], bool]], Any]


class TaskWorker(QThread):
    """Runs ``job(callback, should_stop)`` in a thread. Create one per job; don't reuse."""

    event_emitted = Signal(object)  # an engine event (frozen dataclass)
    succeeded = Signal(object)  # the job's return value
    failed = Signal(str, str)  # one-sentence message, details (traceback for bugs, "" for user errors)
    cancelled = Signal()

    def __init__(self, job: Job, *, name: str = "task", parent=None) -> None:
        super().__init__(parent)
        self._job = job
        self.name = name
        self.setObjectName(f"TaskWorker[{name}]")

    def should_stop(self) -> bool:
        return self.isInterruptionRequested()

    def cancel(self) -> None:
        """Ask the job to stop at its next check; returns at once (use ``wait()`` to block)."""
        self.requestInterruption()

    def run(self) -> None:  # runs in the worker thread
        try:
            result = self._job(self.event_emitted.emit, self.should_stop)
        except ClipStudioError as exc:
            log.info("%s: %s", self.name, exc)
            self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug: keep the traceback for the log and the details pane
            details = traceback.format_exc()
            log.error("%s failed:\n%s", self.name, details)
            self.failed.emit(f"{self.name} failed: {exc}", details)
        else:
            if self.isInterruptionRequested():
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
