"""Collect Python garbage on the GUI thread only.

CPython runs its cyclic garbage collector in whichever thread happens to allocate when a threshold
is crossed. If that is a worker thread (training, health check, thumbnail decoding), unreachable
Qt wrappers from the GUI thread get destroyed there, and Qt crashes (a segfault inside "Garbage-
collecting" in a worker). The usual cure for PySide/PyQt apps: turn automatic collection off and run
it from a timer on the GUI thread instead, with the same generation thresholds.

Collecting on the GUI thread makes its cost visible: with torch, transformers and a model loaded a
full (generation-2) collection walks ~440,000 objects, about 210 ms here, which is a frozen window.
Two things keep that rare and short, as CPython itself does for its own full collections:

- the libraries imported at start-up are moved out of the collector's sight (``gc.freeze``, see
  :func:`freeze_startup_objects`): they live as long as the process, so scanning them only costs;
- a full collection runs only when the objects in generation 2 have grown by a quarter since the
  last one (CPython's ``long_lived_pending > long_lived_total / 4`` rule, which a plain
  ``gc.collect(2)`` on a timer would skip).
"""

from __future__ import annotations

import gc
import logging
import time

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)


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


_long_lived_total = 0  # objects in generation 2 after the last full collection


def collect_due_generation(threshold: tuple[int, ...] | None = None) -> int:
    """Collect the oldest generation that is due, as CPython would; returns the objects collected."""
    global _long_lived_total
    threshold = threshold or gc.get_threshold()
    counts = gc.get_count()
    if counts[2] > threshold[2]:
        long_lived = len(gc.get_objects(generation=2))
        if long_lived - _long_lived_total > _long_lived_total / 4:
            collected = gc.collect(2)
            _long_lived_total = len(gc.get_objects(generation=2))
            return collected
        return gc.collect(1)  # not due after all: what CPython does instead
    for generation in (1, 0):
        if counts[generation] > threshold[generation]:
            return gc.collect(generation)
    return 0


def freeze_startup_objects() -> None:
    """Move every object alive now to the permanent generation, where no collection scans it.

    Call once the heavy libraries are imported (the app does, after its start-up warm-up). Objects
    frozen here are still freed by reference counting; only cycles among them would stay.
    """
    global _long_lived_total
    started = time.perf_counter()
    gc.freeze()
    _long_lived_total = len(gc.get_objects(generation=2))
    log.info("froze %d start-up objects in %.0f ms", gc.get_freeze_count(), (time.perf_counter() - started) * 1000)
