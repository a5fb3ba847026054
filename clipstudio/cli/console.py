"""What the command line shows: exit codes, error lines, JSON output, progress bars, skipped-item reports.

Each command formats its own result tables (beside the command, where its columns are decided).

Results go to stdout; progress, warnings and errors go to stderr, so ``--json -`` pipes cleanly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.split_policy import EvaluationPart
from clipstudio.engine.events import MessageLogged, ProgressUpdated
from clipstudio.engine.storage.atomic import atomic_write_text

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but its check failed (e.g. the demo's self-check, a failed training run)
EXIT_USAGE = 2  # bad arguments, bad data, no model: the user can fix it
EXIT_INTERRUPTED = 130  # Ctrl+C


def print_error(message: str) -> None:
    """The one line a user error gets on stderr."""
    print(f"clipstudio: error: {message}", file=sys.stderr)


def print_warning(message: str) -> None:
    print(f"clipstudio: warning: {message}", file=sys.stderr)


def write_json(target: str, payload: Any) -> None:
    """Write JSON to a file atomically, or to stdout for '-'."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if target == "-":
        print(text)
        return
    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"--json {target}: is a folder; give a file name.")
    atomic_write_text(path, text + "\n")


def show_result(json_target: str | None, payload: Any, text: Callable[[], str]) -> None:
    """Write ``payload`` where ``--json`` asks, and print ``text()`` unless the JSON went to stdout."""
    if json_target:
        write_json(json_target, payload)
    if json_target != "-":
        print(text())


def scored_payload(result: dict[str, Any], part: EvaluationPart, model_spec: str) -> dict[str, Any]:
    """An evaluation's JSON with the split it was scored on and the model that scored it."""
    return {**result, "split": part.name, "split_description": part.description, "model": model_spec}


def write_report_file(path: str, html: str) -> None:
    """Write the report (the HTML file, or a PDF when ``path`` ends in .pdf) and say where."""
    from clipstudio.printing import write_report_file as write  # deferred: Qt's GUI module, only for a report

    print(f"Wrote the report to {write(path, html)}.", file=sys.stderr)


def report_problems(problems: Sequence[Any], verb: str, shown: int = 5) -> None:
    """Warn on stderr about items skipped or unreadable (``Problem``s), the first few by name."""
    print_warning(f"{verb} {len(problems)} item(s):")
    for p in problems[:shown]:
        print(f"  {p.path}: {p.reason}", file=sys.stderr)
    if len(problems) > shown:
        print(
            f"  ... and {len(problems) - shown} more (run 'clipstudio inspect DATA --json -' for all)",
            file=sys.stderr,
        )


class ProgressBars:
    """Turns engine ProgressUpdated events into tqdm bars on stderr, shown only for work over ~2 s.

    MessageLogged events become ``clipstudio: LEVEL: text`` lines on stderr.
    """

    def __init__(self, enabled: bool | None = None):
        self._bars: dict[str, Any] = {}
        self._enabled = enabled

    def __call__(self, event: object) -> None:
        if isinstance(event, MessageLogged):
            print(f"clipstudio: {event.level}: {event.text}", file=sys.stderr)
            return
        if not isinstance(event, ProgressUpdated):
            return
        bar = self._bars.get(event.stage)
        if bar is None:
            disable = None if self._enabled is None else not self._enabled
            bar = tqdm(total=event.total, desc=event.stage, unit="img", delay=2.0, file=sys.stderr,
                       disable=disable, leave=False, dynamic_ncols=True)
            self._bars[event.stage] = bar
        bar.total = event.total
        bar.n = event.done
        bar.refresh()
        if event.done >= event.total:
            bar.close()
            del self._bars[event.stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

