"""What every bad-input case must show, checked the same way for each.

A case either *loads* (the bad item is skipped with one message naming the file and the reason, the
rest loads, ``inspect`` and ``zeroshot`` exit 0 and name it) or is *refused* (a structural fault: one
``DataError`` naming the file, and every command exits 2 with exactly that one line on stderr). Either
way the dataset folder is byte-for-byte and timestamp-for-timestamp what it was before.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from clipstudio.cli.main import main
from clipstudio.engine.data import Dataset, load_dataset
from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.data.health import HealthReport, health_report
from clipstudio.engine.errors import DataError

TEMPLATE = "a photo of {class_name}"


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Loaded:
    """A dataset that loaded despite the bad input, and what each way of reading it said."""

    dataset: Dataset
    report: HealthReport
    inspect: CliRun
    zeroshot: CliRun

    @property
    def n_scored(self) -> int:
        """Images the zero-shot command scored (the first line of its report)."""
        found = re.search(r"^Zero-shot: (\d+) images", self.zeroshot.out, re.MULTILINE)
        assert found, self.zeroshot.out
        return int(found.group(1))

    def problems_naming(self, path: str | Path) -> list[Problem]:
        """Health-report problems about ``path`` (a file, or ``file:line`` / ``file[i]`` prefix)."""
        path = str(path)
        return [
            p for p in self.report.problems if p.path == path or p.path.startswith((path + ":", path + "["))
        ]


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root`` (links not followed): file type, size and modification time in ns."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = os.path.normpath(os.path.join(folder, name))
            st = os.lstat(path)
            state[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return state


class Harness:
    """Runs one dataset through ``load_dataset``, ``health_report``, ``clipstudio inspect`` and ``zeroshot``."""

    def __init__(self, capsys: pytest.CaptureFixture, model_dir: Path):
        self.capsys = capsys
        self.model_dir = model_dir

    def cli(self, *argv: object) -> CliRun:
        self.capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return CliRun(code, out, err)

    def zeroshot(self, data: Path, *extra: object) -> CliRun:
        return self.cli(
            "zeroshot", data, "--model", self.model_dir, "--device", "cpu", "--template", TEMPLATE, *extra
        )

    def loads(self, data: Path, *, watch: Path, cli_args: tuple = (), **load_kwargs) -> Loaded:
        """Everything succeeds (exit 0); nothing below ``watch`` changes."""
        before = tree_state(watch)
        dataset = load_dataset(data, **load_kwargs)
        report = health_report(dataset)
        inspect = self.cli("inspect", data, *cli_args)
        zeroshot = self.zeroshot(data, *cli_args)
        assert tree_state(watch) == before, "something was written into the dataset folder"
        assert inspect.code == 0, inspect.err
        assert zeroshot.code == 0, zeroshot.err
        return Loaded(dataset, report, inspect, zeroshot)

    def refused(self, data: Path, *, watch: Path, cli_args: tuple = (), **load_kwargs) -> str:
        """A DataError; every command exits 2 with that one line; nothing below ``watch`` changes."""
        before = tree_state(watch)
        with pytest.raises(DataError) as info:
            load_dataset(data, **load_kwargs)
        message = str(info.value)
        assert "\n" not in message
        for run in (self.cli("inspect", data, *cli_args), self.zeroshot(data, *cli_args)):
            assert run.code == 2
            assert run.err.splitlines() == [f"clipstudio: error: {message}"]
        assert tree_state(watch) == before, "something was written into the dataset folder"
        return message


def assert_one_clear_message(loaded: Loaded, path: str | Path, reason: str) -> Problem:
    """Exactly one problem names ``path``; its reason contains ``reason``; both commands show it."""
    found = loaded.problems_naming(path)
    assert len(found) == 1, loaded.report.problems
    problem = found[0]
    assert reason in problem.reason, problem
    line = f"{problem.path}: {problem.reason}"
    assert line in loaded.inspect.out
    assert line in loaded.zeroshot.err
    assert "clipstudio: warning:" in loaded.zeroshot.err
    return problem
