"""The ``clipstudio`` entry point: help, dispatch, exit codes, one-line errors, and the package's shape."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import clipstudio.cli
from clipstudio.cli.main import COMMANDS

CLI_DIR = Path(clipstudio.cli.__file__).parent


def test_help_lists_every_command(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("inspect", "zeroshot", "retrieve", "search", "embed", "train", "eval", "selftest", "demo"):
        assert command in out


def test_no_arguments_prints_help(cli):
    code, out, _ = cli()
    assert code == 0 and "usage: clipstudio" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["zeroshot", "somewhere"],  # --model is required
        ["retrieve", "x", "--model", "builtin", "--k", "five"],
        ["search", "x", "--model", "builtin"],  # --text or --image is required
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli, argv):
    code, _, err = cli(*argv)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("clipstudio")
    assert "Traceback" not in err


def test_missing_data_folder_is_one_line_error(cli, tmp_path):
    code, _, err = cli("inspect", tmp_path / "nope")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in err


def test_python_dash_m_runs_the_same_cli_and_user_errors_have_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipstudio", "inspect", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("clipstudio: error:")


def _clipstudio_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported clipstudio module, imported inside a function) for each import in a file."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clipstudio"):
            names = [node.module] if node.module != "clipstudio.cli" else [f"clipstudio.cli.{a.name}" for a in node.names]
            found += [(name, id(node) in local) for name in names]
    return found


def test_command_modules_import_only_the_shared_cli_modules_never_main():
    shared = {"clipstudio.cli.args", "clipstudio.cli.clinical", "clipstudio.cli.console", "clipstudio.cli.processes",
              "clipstudio.cli.steps"}
    for name, module in COMMANDS.items():
        imports = [m for m, _ in _clipstudio_imports(Path(module.__file__)) if m.startswith("clipstudio.cli")]
        allowed = shared | ({"clipstudio.cli.inspect"} if name == "demo" else set())  # the demo shows a health report
        assert set(imports) <= allowed, f"{name}: {imports}"
    for shared_module in shared:
        imports = [m for m, _ in _clipstudio_imports(CLI_DIR / f"{shared_module.rsplit('.', 1)[1]}.py")]
        assert not [m for m in imports if m.startswith("clipstudio.cli") and m not in shared], shared_module


def test_function_local_imports_in_the_cli_say_why_they_are_deferred():
    for path in CLI_DIR.glob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clipstudio"):
                    assert "# deferred:" in lines[node.lineno - 1], f"{path.name}:{node.lineno}"


def test_commands_py_is_gone_and_every_command_has_its_module():
    assert not (CLI_DIR / "commands.py").exists()
    for name, module in COMMANDS.items():
        assert Path(module.__file__).stem == name
        assert callable(module.add_parser) and callable(module.run)
