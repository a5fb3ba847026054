"""Collect Python garbage on the GUI thread only.

CPython runs its cyclic garbage collector in whichever thread happens to allocate when a threshold
is crossed. If that is a worker thread (training, health check, thumbnail decoding), unreachable
Qt wrappers from the GUI thread get destroyed there, and Qt crashes (a segfault inside "Garbage-
collecting" in a worker). The usual cure for PySide/PyQt apps: turn automatic collection off and run
it from a timer on the GUI thread instead, with the same generation thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGarbageCollector(QObject):
    """Disables automatic GC and collects from a GUI-thread timer. Create once, on the GUI thread."""

    INTERVAL_MS = 500

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threshold = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    def _on_timer_timeout(self) -> None:
        collect_due_generation(self._threshold)

    def stop(self) -> None:
        """Back to CPython's automatic collection (after one last collection here)."""
        self._timer.stop()
        gc.collect()
        gc.enable()


def collect_due_generation(threshold: tuple[int, ...] | None = None) -> int:
    """Collect the oldest generation whose count passed its threshold (as CPython itself would)."""
    threshold = threshold or gc.get_threshold()
    counts = gc.get_count()
    for generation in (2, 1, 0):
        if counts[generation] > threshold[generation]:
            return gc.collect(generation)
    return 0
