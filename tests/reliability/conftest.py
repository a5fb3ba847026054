"""Reliability fixtures: run every bad input through load, health report and the CLI, and prove the dataset untouched."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.reliability.harness import Harness


@pytest.fixture(scope="session")
def _model_memo():
    return {}


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core runner they contend badly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def harness(capsys, monkeypatch, tiny_clip_dir, _model_memo, one_torch_thread) -> Harness:
    """A :class:`Harness` with the tiny CLIP model; each model folder is loaded once per session.

    Loading the model is not what these tests are about (tests/engine/models covers it), and the
    tokenizer takes most of a second to build, so ``load_model`` is memoised for the CLI commands.
    """
    from clipstudio.engine import models

    real_load = models.load_model

    def load_once(spec=models.BUILTIN, *, device="auto"):
        key = (str(spec), device)
        if key not in _model_memo:
            _model_memo[key] = real_load(spec, device=device)
        return _model_memo[key]

    monkeypatch.setattr(models, "load_model", load_once)
    return Harness(capsys, tiny_clip_dir)


@pytest.fixture
def ram_folder(tmp_path):
    """A RAM-backed folder where there is one, else ``tmp_path``.

    For the datasets of many thousand files: 100k empty files take a second in RAM and up to half a
    minute on a busy shared disk, which is not what those tests measure.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="clipstudio-test-") as folder:
        yield Path(folder)
