"""The CPU thread tuner: it keeps whichever thread count its own timed steps say is fastest."""

from __future__ import annotations

import time

from clipstudio.engine.runtime.threads import OtherProcessesLoad, ThreadTuner, thread_candidates

QUIET = {2: 0.1, 1: 0.19}
BUSY = {2: 0.6, 1: 0.3}  # as measured: 1.6 vs 3.3 images/s with one core busy


class FakeMachine:
    """Step times per thread count and other programs' load, changeable mid-run."""

    def __init__(self, seconds_per_image: dict[int, float], others: float | None = None) -> None:
        self.seconds_per_image = seconds_per_image
        self.others = others if others is not None else (0.0 if seconds_per_image is QUIET else 1.0)
        self.applied: list[int] = []

    def set_threads(self, n: int) -> None:
        self.applied.append(n)

    def run(self, tuner: ThreadTuner, steps: int, images: int = 32) -> list[int]:
        used = []
        for _ in range(steps):
            used.append(tuner.threads)
            tuner.observe(self.seconds_per_image[tuner.threads] * images, images, self.others)
        return used


def test_candidates_are_the_default_one_fewer_and_half_without_repeats():
    assert thread_candidates(8) == [8, 7, 4]
    assert thread_candidates(2) == [2, 1]
    assert thread_candidates(1) == [1]


def test_a_quiet_machine_keeps_all_its_threads_tries_nothing_and_says_nothing():
    machine = FakeMachine(QUIET)
    changes = []
    tuner = ThreadTuner([2, 1], machine.set_threads, on_change=lambda n, r: changes.append(n))
    used = machine.run(tuner, 100)
    assert set(used) == {2} and machine.applied == [] and changes == []


def test_a_busy_core_moves_training_to_one_thread_and_reports_the_measured_rates():
    machine = FakeMachine(BUSY)
    changes = []
    tuner = ThreadTuner([2, 1], machine.set_threads, on_change=lambda n, r: changes.append((n, r)))
    used = machine.run(tuner, 30)
    assert used[:5] == [2, 2, 1, 1, 1]  # warm-up, one step at 2 threads, two at 1, then the winner
    assert set(used[3:]) == {1}
    assert changes == [(1, {2: 1 / 0.6, 1: 1 / 0.3})]


def test_a_busy_machine_where_all_threads_still_win_keeps_them():
    machine = FakeMachine(QUIET, others=0.5)  # some load, but not enough to make 1 thread faster
    tuner = ThreadTuner([2, 1], machine.set_threads, explore_every=40)
    used = machine.run(tuner, 200)
    assert tuner.chosen == 2 and used[-1] == 2
    assert used.count(1) <= 2 * (1 + 200 // 40)  # re-checks cost a couple of steps each


def test_load_that_comes_and_goes_during_a_run_is_followed():
    machine = FakeMachine(QUIET)
    changes = []
    tuner = ThreadTuner([2, 1], machine.set_threads, on_change=lambda n, r: changes.append((n, r)))
    machine.run(tuner, 8)
    assert tuner.chosen == 2
    machine.seconds_per_image, machine.others = BUSY, 1.0  # another program takes a core
    machine.run(tuner, 4)
    assert tuner.chosen == 1
    machine.seconds_per_image, machine.others = QUIET, 0.0  # ...and ends
    used = machine.run(tuner, 5)
    assert tuner.chosen == 2 and used[-1] == 2
    assert changes[-1] == (2, {})  # back to every thread, without trying anything


def test_without_a_load_reading_it_times_the_counts_as_if_busy():
    machine = FakeMachine(BUSY)
    tuner = ThreadTuner([2, 1], machine.set_threads)
    for _ in range(10):
        tuner.observe(machine.seconds_per_image[tuner.threads] * 32, 32)
    assert tuner.chosen == 1


def test_other_programs_load_is_measured_in_cores():
    load = OtherProcessesLoad()
    time.sleep(0.2)
    assert 0.0 <= load() <= 64


def test_a_single_candidate_never_changes_anything():
    machine = FakeMachine({1: 0.3})
    tuner = ThreadTuner([1], machine.set_threads)
    machine.run(tuner, 10)
    assert machine.applied == [] and tuner.threads == 1
