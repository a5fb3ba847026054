"""Garbage is collected on the GUI thread, never in a worker (where it would destroy Qt objects)."""

from __future__ import annotations

import gc

from clipstudio.gui.gc_policy import GuiThreadGarbageCollector, collect_due_generation


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_collector_turns_automatic_gc_off_and_collects_cycles_from_its_timer(qtbot):
    was_enabled = gc.isenabled()
    collector = GuiThreadGarbageCollector()
    try:
        assert not gc.isenabled()
        for _ in range(3000):  # enough new objects to pass generation 0's threshold
            _Cycle()
        assert gc.get_count()[0] > gc.get_threshold()[0]
        qtbot.waitUntil(lambda: gc.get_count()[0] < gc.get_threshold()[0], timeout=5000)
    finally:
        collector.stop()
        if not was_enabled:
            gc.disable()
    assert gc.isenabled() or not was_enabled


def test_nothing_is_collected_below_the_thresholds():
    gc.collect()
    assert collect_due_generation((10**9, 10**9, 10**9)) == 0
