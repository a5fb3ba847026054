"""Training test helpers: small coloured class folders / pairs and a TrainConfig factory.

The event ``recorder`` is shared: tests/fixtures_runs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipstudio.engine.config import TrainConfig
from tests.fixtures_runs import quick_train_config


@pytest.fixture
def class_data(tmp_path, make_class_folders) -> Path:
    """3 classes x 6 images (one colour per class), no split folders."""
    return make_class_folders(tmp_path / "classes", {"red": 6, "green": 6, "blue": 6})


@pytest.fixture
def pair_data(tmp_path, make_clip_finetune) -> Path:
    """CLIP-Finetune layout: 12 train + 6 val image-caption pairs."""
    return make_clip_finetune(tmp_path / "pairs", {"train": 12, "val": 6})


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(data, model_dir, **overrides)`` -> a small, fast, deterministic TrainConfig."""

    def make(data: Path, model_dir: Path, *, name: str = "run", **overrides) -> TrainConfig:
        return quick_train_config(data, model_dir, tmp_path / name, **overrides)

    return make
