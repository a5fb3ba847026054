"""The package's import contracts: the layers in pyproject.toml, no hidden local imports, no Qt in the engine.

The static checks are the ones .ci/run runs (``lint-imports`` and ``.ci/check_local_imports.py``);
the subprocess checks prove what a clean interpreter really loads, like napari's import contract.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")


def _lint_imports() -> str:
    """The lint-imports next to this interpreter (the venv's), else one on PATH."""
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.is_file() else (shutil.which("lint-imports") or "")


@pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None or not _lint_imports(),
    reason="import-linter is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_import_contracts_hold():
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_no_undeclared_function_local_imports_of_clipstudio_modules():
    result = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "check_local_imports.py")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_local_import_check_accepts_only_commented_deferrals(tmp_path):
    module = tmp_path / "clipstudio" / "example.py"
    module.parent.mkdir()
    module.write_text(
        "def plain():\n"
        "    from clipstudio.engine import errors\n"
        "\n"
        "def deferred():\n"
        "    from clipstudio.gui import app  # deferred: the window loads Qt, which commands never need\n"
        "\n"
        "def third_party():\n"
        "    import torch\n",
        encoding="utf-8",
    )
    script = REPO / ".ci" / "check_local_imports.py"
    spec = importlib.util.spec_from_file_location("check_local_imports", script)
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)

    found = checker.local_imports(tmp_path, [module])
    assert [(line, imported, ok) for _file, line, _importer, imported, ok in found] == [
        (2, "clipstudio.engine", False),
        (5, "clipstudio.gui", True),
    ]


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {line.split(".")[0] for line in out.stdout.splitlines()}


def test_engine_import_pulls_in_no_qt():
    loaded = _modules_after_import(
        "import clipstudio.engine, clipstudio.engine.data, clipstudio.engine.models, "
        "clipstudio.engine.evaluation.zero_shot, clipstudio.engine.prompts, clipstudio.engine.embeddings, "
        "clipstudio.engine.data.health, clipstudio.engine.data.splits, clipstudio.engine.training.trainer, "
        "clipstudio.cli.main"
    )
    assert not loaded & set(QT_MODULES), f"engine imported Qt: {sorted(loaded & set(QT_MODULES))}"


def test_cli_help_does_not_import_torch():
    """`clipstudio --help` stays instant: torch and transformers load only inside commands."""
    loaded = _modules_after_import("import clipstudio.cli.main")
    assert "torch" not in loaded and "transformers" not in loaded
