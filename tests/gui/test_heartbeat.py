"""The GUI-stall meter: beats are recorded, and stalls are the gaps beyond the beat interval."""

from __future__ import annotations

from clipstudio.gui.heartbeat import Heartbeat, stall_stats


def test_a_late_beat_is_a_stall_of_its_lateness():
    ticks = [0.000, 0.010, 0.020, 0.100, 0.110]  # one gap of 80 ms: 70 ms later than the 10 ms beat
    stats = stall_stats(ticks)
    assert stats["max_ms"] == 70.0 and stats["beats"] == 4 and stats["over_50ms"] == 1
    assert stall_stats(ticks, [(0.0, 0.015)], late_ms=100) == {"max_ms": 0.0, "p99_ms": 0.0, "beats": 2,
                                                                 "over_100ms": 0}


def test_heartbeat_records_beats_while_the_event_loop_runs(qtbot):
    heartbeat = Heartbeat()
    heartbeat.start()
    qtbot.wait(200)
    heartbeat.stop()
    assert len(heartbeat.ticks) >= 5
    assert heartbeat.ticks == sorted(heartbeat.ticks)
