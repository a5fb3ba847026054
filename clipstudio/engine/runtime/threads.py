"""CPU training picks its own thread count from the speed of its own steps, because users' machines are busy.

torch splits every matmul across one OpenMP thread per core and waits at a barrier for the slowest
thread. When another program (a browser, a virus scan, a second job) holds one of the cores, the
thread sharing that core runs at half speed and every other thread waits for it: on a 2-core machine
with one core busy, a ViT-B/32 fine-tune ran at 1.6 images/s with 2 threads and 3.3 with 1
(docs/PERFORMANCE.md). No fixed setting is right for both a quiet and a busy machine, and load
changes during a run, so ``ThreadTuner`` times real training steps: while other programs keep at
least ``BUSY_CORES`` of a core busy (``OtherProcessesLoad``, from the system's and this process's
CPU times), it tries each candidate count for a couple of steps, keeps the fastest, and tries again
every ``explore_every`` steps or as soon as the chosen count slows down by half. On a quiet machine
it tries nothing (every core is then the best bet, and a trial of fewer threads would only cost
time) and returns to all threads as soon as the machine is quiet again.

Only the CPU needs this (a GPU step's CPU threads mostly wait for the GPU).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import psutil

EXPLORE_EVERY = 40  # steps between re-checks of the other thread counts
TRIALS = 2  # timed steps per candidate and check
SLOWDOWN = 1.5  # re-check at once when the chosen count's steps get this much slower
BUSY_CORES = 0.3  # other programs' CPU use, in cores, from which fewer threads may be faster


class OtherProcessesLoad:
    """Cores' worth of CPU that other programs used since the previous call (all cores' busy time minus ours)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        system = psutil.cpu_times()
        busy = sum(system) - system.idle - getattr(system, "iowait", 0.0)
        own = self._process.cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def __call__(self) -> float:
        now, busy, own = self._read()
        then, busy0, own0 = self._last
        self._last = (now, busy, own)
        return max(0.0, ((busy - busy0) - (own - own0)) / max(now - then, 1e-6))


def thread_candidates(current: int) -> list[int]:
    """The counts worth trying from torch's default ``current``: it, one fewer, half of it; no duplicates."""
    found: list[int] = []
    for n in (current, current - 1, current // 2):
        if n >= 1 and n not in found:
            found.append(n)
    return found


class ThreadTuner:
    """Chooses among ``candidates`` thread counts by timing steps; ``observe`` after every step.

    ``set_threads`` applies a count (``torch.set_num_threads`` in the trainer); ``on_change`` hears
    ``(threads, rates)`` when the choice changes, with the measured images/s of each count tried.
    The first ``warmup`` observed steps are not timed (one-off allocations, kernel selection).
    """

    def __init__(
        self,
        candidates: Sequence[int],
        set_threads: Callable[[int], None],
        *,
        on_change: Callable[[int, dict[int, float]], None] | None = None,
        trials: int = TRIALS,
        explore_every: int = EXPLORE_EVERY,
        warmup: int = 1,
    ) -> None:
        if not candidates:
            raise ValueError("ThreadTuner needs at least one thread count")
        self.candidates = list(dict.fromkeys(candidates))
        self._set = set_threads
        self._on_change = on_change
        self.trials, self.explore_every, self._warmup = trials, explore_every, warmup
        self.threads = self.candidates[0]
        self._queue: list[int] = []  # counts still to time in the check in progress
        self._samples: dict[int, list[float]] = {}  # seconds per image, this check
        self._recent: list[float] = []  # seconds per image at the chosen count since the check
        self._chosen_rate: float | None = None
        self.chosen = self.candidates[0]  # the count in use between checks
        self._since_check = 0

    def observe(self, seconds: float, images: int, others: float | None = None) -> None:
        """Record one step of ``images`` that took ``seconds`` at ``self.threads``; may change the count.

        ``others``: other programs' CPU use during the step, in cores (None: unknown, treated as busy).
        """
        if self._warmup > 0:
            self._warmup -= 1
            return
        if images <= 0 or seconds <= 0 or len(self.candidates) == 1:
            return
        per_image = seconds / images
        if others is not None and others < BUSY_CORES and not self._queue:
            if self.chosen != self.candidates[0]:  # quiet again: every core is the best bet
                self._choose_quietly()
            return
        if self._queue:
            times = self._samples.setdefault(self.threads, [])
            times.append(per_image)
            if len(times) >= self.trials:
                self._queue.pop(0)
                if self._queue:
                    self._apply(self._queue[0])
                else:
                    self._choose()
            return
        self._since_check += 1
        self._recent = [*self._recent[-(self.trials - 1) :], per_image] if self.trials > 1 else [per_image]
        recent = statistics.median(self._recent)
        slowed = self._chosen_rate is not None and recent > SLOWDOWN * self._chosen_rate
        due = self._chosen_rate is None or self._since_check >= self.explore_every
        if due or (slowed and len(self._recent) >= self.trials):
            # The chosen count's latest steps stand in for its trial; time the others.
            self._samples = {self.threads: list(self._recent)}
            self._queue = [n for n in self.candidates if n != self.threads]
            self._apply(self._queue[0])

    def _choose(self) -> None:
        medians = {n: statistics.median(t) for n, t in self._samples.items() if t}
        best = min(medians, key=medians.get)
        previous, self.chosen = self.chosen, best
        self._chosen_rate = medians[best]
        self._recent, self._since_check = [], 0
        self._apply(best)
        if self._on_change is not None and best != previous:
            self._on_change(best, {n: 1.0 / s for n, s in sorted(medians.items(), reverse=True)})

    def _choose_quietly(self) -> None:
        self.chosen, self._chosen_rate = self.candidates[0], None
        self._recent, self._since_check = [], 0
        self._apply(self.chosen)
        if self._on_change is not None:
            self._on_change(self.chosen, {})

    def _apply(self, threads: int) -> None:
        if threads != self.threads:
            self._set(threads)
            self.threads = threads
