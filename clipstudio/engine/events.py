"""Engine -> UI events: small frozen dataclasses of plain values, and the Callback protocol.

The engine takes ``callback`` (any callable accepting an event) and ``should_stop``
(a no-argument callable); the CLI turns events into progress bars, the GUI into signals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProgressUpdated:
    """``done`` of ``total`` units of ``stage`` are finished (e.g. stage="encode images")."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class MessageLogged:
    """A line for the user's log pane / stderr. Never contains caption text or image contents."""

    level: str  # "info" | "warning"
    text: str


class Callback(Protocol):
    def __call__(self, event: object) -> None: ...


def no_callback(event: object) -> None:
    """The default callback: drop every event."""


def never_stop() -> bool:
    return False


ShouldStop = Callable[[], bool]
