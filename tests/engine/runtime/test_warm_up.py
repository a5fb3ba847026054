"""The start-up warm-up imports what jobs need and shrugs off modules it cannot import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clipstudio.engine.runtime import warm_up


@pytest.mark.slow  # imports the whole engine and transformers in a fresh interpreter
def test_warm_up_imports_the_engine_without_qt():
    code = (
        "import sys\n"
        "from clipstudio.engine.runtime.warm_up import import_engine\n"
        "import_engine()\n"
        "assert 'transformers' in sys.modules and 'clipstudio.engine.training.trainer' in sys.modules\n"
        "assert 'PySide6' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_missing_module_is_skipped_and_the_rest_imported(monkeypatch):
    monkeypatch.setattr(warm_up, "MODULES", ("clipstudio_no_such_module", "colorsys", "clipstudio.engine.evaluation.search"))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    imported = warm_up.import_engine()
    assert "clipstudio_no_such_module" not in imported
    assert "colorsys" in imported


def test_stop_request_ends_the_warm_up_early(monkeypatch):
    monkeypatch.setattr(warm_up, "MODULES", ("colorsys",))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert warm_up.import_engine(should_stop=lambda: True) == {}


@pytest.mark.slow  # three threads import transformers in a fresh interpreter
def test_jobs_starting_during_the_warm_up_get_whole_modules():
    # Each thread stands for a job started while the app's warm-up imports: before the lock, a
    # concurrent `from transformers import AutoModel` could see a half-initialised transformers.
    code = (
        "import threading\n"
        "from clipstudio.engine.runtime.warm_up import import_engine\n"
        "errors = []\n"
        "def job():\n"
        "    try:\n"
        "        import_engine()\n"
        "        from transformers import AutoModel, AutoTokenizer, CLIPModel\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=job) for _ in range(3)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "assert not errors, errors\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
