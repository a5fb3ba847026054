"""Training sees the pixels evaluation sees: the cached crops of odd-size images equal ``model.preprocess``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.data.images import load_image
from clipstudio.engine.training import setup
from tests.fixtures_models import write_clip_vocab

OPEN_CLIP_ASSETS = Path(__file__).resolve().parents[2] / "assets" / "open_clip"
# Sizes whose centre crop at 32 px has an odd margin (floor and round offsets differ) or whose longer side
# rounds and truncates differently (41 x 30 -> 43.7).
SIZES = [(35, 32), (27, 22), (41, 30), (22, 27), (30, 33), (45, 38)]


@pytest.fixture
def odd_size_data(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "odd" / name).mkdir(parents=True)
        for i, (w, h) in enumerate(SIZES):
            noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # any shifted column shows
            Image.fromarray(noise).save(tmp_path / "odd" / name / f"{name}_{i}.png")
    return tmp_path / "odd"


@pytest.fixture
def open_clip_dir(tmp_path) -> Path:
    """A standard open_clip CLIP (torchvision's rounded crop offset), with its BPE tokenizer beside it."""
    folder = Path(shutil.copytree(OPEN_CLIP_ASSETS / "clip_quickgelu_tiny", tmp_path / "open_clip"))
    write_clip_vocab(folder)
    return folder


@pytest.mark.parametrize("model_fixture", ["tiny_clip_dir", "open_clip_dir", "tiny_dual_dir"])
def test_training_pixels_of_odd_size_images_equal_the_evaluation_preprocessing(
    model_fixture, request, odd_size_data, make_cfg
):
    cfg = make_cfg(odd_size_data, request.getfixturevalue(model_fixture), method="full", augmentation="none")
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    model = setup.load_start_model(cfg, data.start_spec, torch.device("cpu"))
    method = setup.build_method(
        cfg, model, data, callback=lambda e: None, should_stop=lambda: False, device=torch.device("cpu")
    )

    train = method.train
    trained_on = method.eval_transform(train.array[:])
    paths = [data.dataset.samples[i].path for i in train.dataset_indices]
    evaluated = model.preprocess([load_image(p) for p in paths])
    assert trained_on.shape == evaluated.shape
    assert float((trained_on - evaluated).abs().max()) < 1e-5
