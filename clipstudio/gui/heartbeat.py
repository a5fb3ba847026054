"""Measure how long the GUI thread stalls: a 10 ms timer on it, and the gaps between its beats.

Used by the stall benchmark (``bench/bench_gui_stall.py``) and the new-user walkthrough
(``clipstudio.gui.walkthrough``). With a trace file, every thread's stack is dumped whenever a beat
is late (faulthandler's watchdog runs in C, without the GIL, so it fires while the GUI thread
waits), which is how the stalls' causes were found.
"""

from __future__ import annotations

import faulthandler
import time
from collections.abc import Iterable
from typing import TextIO

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer

INTERVAL_MS = 10


class Heartbeat(QObject):
    """Records ``time.perf_counter()`` at each beat of a precise timer; ``start()``, then ``stop()``."""

    def __init__(self, *, trace_file: TextIO | None = None, trace_late_ms: float = 50.0, parent=None) -> None:
        super().__init__(parent)
        self.ticks: list[float] = []
        self._trace_file = trace_file
        self._trace_after_s = (INTERVAL_MS + trace_late_ms) / 1000
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._trace_file is not None:
            faulthandler.cancel_dump_traceback_later()

    def _on_timer_timeout(self) -> None:
        self.ticks.append(time.perf_counter())
        if self._trace_file is not None:  # re-armed each beat: it fires only if the next one is late
            faulthandler.dump_traceback_later(self._trace_after_s, file=self._trace_file)


def stall_stats(ticks: Iterable[float], spans: Iterable[tuple[float, float]] | None = None, *,
                late_ms: float = 50.0) -> dict[str, float | int]:
    """Longest and 99th-percentile stall (gap minus the interval, ms) over the gaps overlapping ``spans``.

    ``spans`` are (start, end) perf_counter times; None keeps every gap. ``over_<late_ms>ms`` counts
    the beats later than ``late_ms``.
    """
    ticks = np.asarray(list(ticks), dtype=np.float64)
    gaps = np.diff(ticks) * 1000.0
    if spans is not None:
        keep = np.zeros(len(gaps), dtype=bool)
        for start, end in spans:
            keep |= (ticks[1:] > start) & (ticks[:-1] < end)
        gaps = gaps[keep]
    stalls = np.maximum(gaps - INTERVAL_MS, 0.0)
    return {
        "max_ms": round(float(stalls.max()), 1) if len(stalls) else 0.0,
        "p99_ms": round(float(np.percentile(stalls, 99)), 1) if len(stalls) else 0.0,
        "beats": int(len(stalls)),
        f"over_{late_ms:g}ms": int((stalls > late_ms).sum()),
    }
