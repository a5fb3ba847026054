"""The engine never imports Qt: checked in a clean interpreter, like napari's import contract."""

from __future__ import annotations

import subprocess
import sys

QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {line.split(".")[0] for line in out.stdout.splitlines()}


def test_engine_import_pulls_in_no_qt():
    loaded = _modules_after_import(
        "import clipstudio.engine, clipstudio.engine.data, clipstudio.engine.models, "
        "clipstudio.engine.evaluation.zero_shot, clipstudio.engine.prompts, clipstudio.engine.embeddings, "
        "clipstudio.engine.data.health, clipstudio.engine.data.splits, clipstudio.cli.main, clipstudio.cli.commands"
    )
    assert not loaded & set(QT_MODULES), f"engine imported Qt: {sorted(loaded & set(QT_MODULES))}"


def test_cli_help_does_not_import_torch():
    """`clipstudio --help` stays instant: torch and transformers load only inside commands."""
    loaded = _modules_after_import("import clipstudio.cli.main")
    assert "torch" not in loaded and "transformers" not in loaded
