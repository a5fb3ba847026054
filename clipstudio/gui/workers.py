"""Background work for the GUI: one cancellable QThread per job (labelme / Orange3 style).

An engine job is a plain function ``fn(callback, should_stop) -> result``; ``TaskWorker`` runs it off
the GUI thread, forwards every engine event through the ``event_emitted`` signal (queued to the GUI
thread), and ends with exactly one of ``succeeded(result)``, ``failed(message, details)`` or
``cancelled()``. Cancellation is cooperative (``requestInterruption``); ``terminate()`` is never used.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import shiboken6
from PySide6.QtCore import QThread, Signal

from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.runtime.warm_up import import_engine

log = logging.getLogger(__name__)

Job = Callable[[Callable[[object], None], Callable[[], bool]], Any]


class TaskWorker(QThread):
    """Runs ``job(callback, should_stop)`` in a thread. Create one per job; don't reuse.

    ``background`` (the default) runs the job at a lower OS priority than the GUI thread, so a
    job that keeps every core busy never makes the window wait for a CPU. ``needs_engine=False``
    is for a job that imports neither torch nor transformers: it doesn't wait for the start-up
    import of the engine, which takes a minute on a busy machine.
    """

    event_emitted = Signal(object)  # an engine event (frozen dataclass)
    succeeded = Signal(object)  # the job's return value
    failed = Signal(str, str)  # one-sentence message, details (traceback for bugs, "" for user errors)
    cancelled = Signal()

    # How much lower than the GUI a background job runs (Unix nice steps). Training keeps every core
    # busy; at equal priority the window's paint and input events queue behind it on a small CPU.
    BACKGROUND_NICE = 5
    # Every worker built, so quitting can stop them all without waiting (weak: no worker is kept alive).
    _built: ClassVar[weakref.WeakSet[TaskWorker]] = weakref.WeakSet()

    def __init__(
        self, job: Job, *, name: str = "task", parent=None, background: bool = True, needs_engine: bool = True
    ) -> None:
        super().__init__(parent)
        self._job = job
        self.name = name
        self.background = background
        self.needs_engine = needs_engine
        self.setObjectName(f"TaskWorker[{name}]")
        TaskWorker._built.add(self)

    @classmethod
    def running_workers(cls) -> list[TaskWorker]:
        """The workers whose thread still runs (for quitting: wait while the window keeps painting)."""
        return [w for w in list(cls._built) if shiboken6.isValid(w) and w.isRunning()]

    @classmethod
    def cancel_all(cls) -> list[TaskWorker]:
        """Ask every running worker to stop at its next check; returns them at once, without waiting."""
        running = cls.running_workers()
        for worker in running:
            worker.cancel()
        return running

    def should_stop(self) -> bool:
        return self.isInterruptionRequested()

    def cancel(self) -> None:
        """Ask the job to stop at its next check; returns at once (use ``wait()`` to block)."""
        self.requestInterruption()

    def _lower_priority(self) -> None:
        """Let the GUI thread win the CPU over this one (and the threads it starts, which inherit it)."""
        self.setPriority(QThread.Priority.LowPriority)  # Windows and macOS; a no-op for Linux threads
        if sys.platform.startswith("linux"):
            try:  # Linux threads are tasks with their own nice value
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.BACKGROUND_NICE)
            except OSError as exc:
                log.debug("%s: could not lower the thread priority: %s", self.name, exc)

    def run(self) -> None:  # runs in the worker thread
        if self.background:
            self._lower_priority()
        try:
            # Never import torch/transformers alongside another thread (see engine.warm_up): if the
            # start-up warm-up is still importing, wait for it; if everything is loaded, no cost.
            # A job that never imports them (reading a folder) starts at once instead.
            if self.needs_engine:
                import_engine(self.should_stop)
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
