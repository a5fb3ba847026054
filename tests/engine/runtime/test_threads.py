"""The CPU thread tuner: it keeps whichever thread count its own timed steps say is fastest."""

from __future__ import annotations

from clipstudio.engine.runtime.threads import ThreadTuner, thread_candidates


class FakeMachine:
    """Step times per thread count, changeable mid-run (another program starting or ending)."""

    def __init__(self, seconds_per_image: dict[int, float]) -> None:
        self.seconds_per_image = seconds_per_image
        self.applied: list[int] = []

    def set_threads(self, n: int) -> None:
        self.applied.append(n)

    def run(self, tuner: ThreadTuner, steps: int, images: int = 32) -> list[int]:
        used = []
        for _ in range(steps):
            used.append(tuner.threads)
            tuner.observe(self.seconds_per_image[tuner.threads] * images, images)
        return used


def test_candidates_are_the_default_one_fewer_and_half_without_repeats():
    assert thread_candidates(8) == [8, 7, 4]
    assert thread_candidates(2) == [2, 1]
    assert thread_candidates(1) == [1]


def test_a_quiet_machine_keeps_all_its_threads_and_says_nothing():
    machine = FakeMachine({2: 0.1, 1: 0.19})
    changes = []
    tuner = ThreadTuner([2, 1], machine.set_threads, on_change=lambda n, r: changes.append(n))
    used = machine.run(tuner, 30)
    assert used[:7] == [2, 2, 2, 1, 1, 2, 2]  # warm-up, two timed steps each, then the winner
    assert set(used[5:]) == {2}
    assert changes == []


def test_a_busy_core_moves_training_to_one_thread_and_reports_the_measured_rates():
    machine = FakeMachine({2: 0.6, 1: 0.3})  # as measured: 1.6 vs 3.3 images/s with one core busy
    changes = []
    tuner = ThreadTuner([2, 1], machine.set_threads, on_change=lambda n, r: changes.append((n, r)))
    used = machine.run(tuner, 30)
    assert set(used[5:]) == {1}
    assert changes == [(1, {2: 1 / 0.6, 1: 1 / 0.3})]


def test_load_that_comes_and_goes_during_a_run_is_followed():
    machine = FakeMachine({2: 0.1, 1: 0.19})
    tuner = ThreadTuner([2, 1], machine.set_threads, explore_every=10)
    machine.run(tuner, 8)
    assert tuner.chosen == 2
    machine.seconds_per_image = {2: 0.6, 1: 0.3}  # another program takes a core
    machine.run(tuner, 6)  # the slowdown alone triggers a check, before explore_every
    assert tuner.chosen == 1
    machine.seconds_per_image = {2: 0.1, 1: 0.19}  # ...and ends
    used = machine.run(tuner, 30)
    assert tuner.chosen == 2 and used[-1] == 2


def test_re_checks_cost_only_a_few_steps_at_the_slower_count():
    machine = FakeMachine({2: 0.1, 1: 0.19})
    tuner = ThreadTuner([2, 1], machine.set_threads, explore_every=40)
    used = machine.run(tuner, 200)
    assert used.count(1) <= 2 + 2 * (200 // 40)


def test_a_single_candidate_never_changes_anything():
    machine = FakeMachine({1: 0.3})
    tuner = ThreadTuner([1], machine.set_threads)
    machine.run(tuner, 10)
    assert machine.applied == [] and tuner.threads == 1
