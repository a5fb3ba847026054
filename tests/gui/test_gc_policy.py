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


def test_a_full_collection_waits_until_generation_2_grew_by_a_quarter(monkeypatch):
    from clipstudio.gui import gc_policy

    collected = []
    monkeypatch.setattr(gc_policy.gc, "collect", lambda generation=2: collected.append(generation) or 0)
    in_gen2 = len(gc.get_objects(generation=2))
    monkeypatch.setattr(gc_policy, "_long_lived_total", in_gen2)  # nothing new since the last full pass
    collect_due_generation((10**9, 10**9, -1))
    monkeypatch.setattr(gc_policy, "_long_lived_total", int(in_gen2 / 2))  # generation 2 doubled since
    collect_due_generation((10**9, 10**9, -1))
    assert collected == [1, 2]


def test_startup_objects_are_frozen_out_of_later_collections():
    from clipstudio.gui.gc_policy import freeze_startup_objects

    survivor = [_Cycle() for _ in range(10)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert not any(obj is survivor for obj in gc.get_objects())
    finally:
        gc.unfreeze()
