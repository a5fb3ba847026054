"""Long phases in words: "Reading images: 120 of 480 · 4.2 images/s · about 1 min 26 s left".

The engine reports a phase as ``ProgressUpdated(stage, done, total)`` events; ``PhaseTracker`` turns
them into that line for any screen (the Train screen's status, every screen's job label), with the
speed measured since the phase began, so images served from the cache at once don't inflate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipstudio.engine.events import VALIDATE_STAGE, ProgressUpdated


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# The engine's progress stages in words (name, unit, what it is); long phases (reading the images:
# for a linear probe almost all of the run) show counts, speed and time left.
PHASES = {
    "encode images": ("Reading images", "images",
                      "The model reads each image once. What it finds is remembered, so later runs and "
                      "scoring with this model skip these images."),
    "decode images": ("Loading images", "images", "Each image is opened and resized once, before training."),
    "encode texts": ("Reading class descriptions", "texts", ""),
    VALIDATE_STAGE: ("Checking the validation images", "images",
                     "Before the first step and after every epoch the model is scored on the validation "
                     "images: that is how the run measures progress and picks its best checkpoint."),
}
# Time left is shown once the phase has run this long: the first batch includes start-up costs.
PHASE_ETA_AFTER_S = 1.0


@dataclass
class PhaseClock:
    """When a progress phase started and where it was then, for its speed and time left."""

    stage: str
    total: int
    start_done: int
    start_time: float

    def follows(self, stage: str, total: int, done: int) -> bool:
        return stage == self.stage and total == self.total and done >= self.start_done

    def speed(self, done: int, now: float) -> float | None:
        """Units per second since the phase started (None until it has run a moment)."""
        elapsed = now - self.start_time
        if elapsed < PHASE_ETA_AFTER_S or done <= self.start_done:
            return None
        return (done - self.start_done) / elapsed


def format_phase(stage: str, done: int, total: int, speed: float | None) -> str:
    """'Loading images: 120 of 480 · 4.2 images/s · about 1 min 26 s left' (speed None: no rate yet)."""
    name, unit, _ = PHASES.get(stage, (f"{stage[:1].upper()}{stage[1:]}", "done", ""))
    text = f"{name}: {done} of {total}"
    if speed:
        text += f" · {speed:.1f} {unit}/s" if speed < 10 else f" · {speed:.0f} {unit}/s"
        if done < total:
            text += f" · about {format_duration((total - done) / speed)} left"
    return text


def phase_help(stage: str) -> str:
    """One or two sentences on what the phase is ("" when there is nothing to add)."""
    return PHASES.get(stage, ("", "", ""))[2]


class PhaseTracker:
    """Follows the phase under way across events and words it with speed and time left."""

    def __init__(self) -> None:
        self._clock: PhaseClock | None = None

    def text(self, event: ProgressUpdated, now: float) -> str:
        if self._clock is None or not self._clock.follows(event.stage, event.total, event.done):
            self._clock = PhaseClock(event.stage, event.total, event.done, now)  # cached images: done at once
        return format_phase(event.stage, event.done, event.total, self._clock.speed(event.done, now))
