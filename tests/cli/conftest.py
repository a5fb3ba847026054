"""``cli``: run ``clipstudio ARGS...`` in-process and get (exit code, stdout, stderr)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clipstudio.cli.main import main


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    def run(*argv: object) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
