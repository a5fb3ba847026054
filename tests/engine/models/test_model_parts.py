"""Package hygiene, image preprocessing and the backbone registry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import clipstudio.engine.models as models_pkg
from clipstudio.engine.errors import ModelError
from clipstudio.engine.models import load_model
from clipstudio.engine.models.backbones import BACKBONES, BackboneSpec, register_backbone
from clipstudio.engine.models.dual_encoder import DualEncoderModel
from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

PACKAGE = Path(models_pkg.__file__).parent


def _sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in PACKAGE.glob("*.py")}


def test_no_remote_code_and_no_unpickling_in_model_package():
    for name, text in _sources().items():
        assert "trust_remote_code" not in text, name
        assert "import pickle" not in text, name
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{name}: {call}"


def test_importing_models_pulls_in_neither_qt_nor_transformers():
    code = "import sys, clipstudio.engine.models; print(sorted(m for m in ('PySide6', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_preprocessing_makes_normalised_square_rgb_batches_from_any_image():
    prep = ImagePreprocessing(image_size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    gray = Image.fromarray(np.full((10, 40), 255, dtype=np.uint8), mode="L")
    rgba = Image.new("RGBA", (7, 3), (0, 0, 0, 0))
    batch = prep([gray, rgba])
    assert batch.shape == (2, 3, 16, 16) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0], torch.ones(3, 16, 16))
    torch.testing.assert_close(batch[1], -torch.ones(3, 16, 16))
    assert prep([]).shape == (0, 3, 16, 16)


def test_preprocessing_centre_crops_the_longer_side():
    prep = ImagePreprocessing(image_size=4, mean=(0, 0, 0), std=(1, 1, 1), resample="nearest")
    stripes = np.zeros((4, 12, 3), dtype=np.uint8)
    stripes[:, 4:8] = 255  # only the middle third is white
    torch.testing.assert_close(prep([Image.fromarray(stripes)])[0], torch.ones(3, 4, 4))


def test_preprocessing_round_trips_through_json_and_rejects_unknown_keys():
    prep = ImagePreprocessing(image_size=48, resize_size=56, mean=(0.1, 0.2, 0.3), std=(1, 2, 3))
    assert ImagePreprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(ModelError, match="crop_pct"):
        ImagePreprocessing.from_dict({"image_size": 48, "crop_pct": 0.9})


class _MeanColour(nn.Module):
    """A toy backbone: per-channel mean and a learnable gain."""

    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(3))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.mean(dim=(2, 3)) * self.gain


def test_a_registered_backbone_saves_and_reloads(tiny_dual_dir, tmp_path):
    register_backbone(BackboneSpec("toy_mean_colour", _MeanColour, ImagePreprocessing(image_size=8)))
    try:
        base = load_model(str(tiny_dual_dir), device="cpu")
        model = DualEncoderModel.create(
            image_backbone="toy_mean_colour",
            text_encoder=base.module.text_encoder,
            tokenizer=base.tokenizer,
            embed_dim=4,
            pretrained_image=False,
        )
        pixels = model.preprocess([Image.new("RGB", (9, 9), (200, 10, 10))])
        again = load_model(str(model.save(tmp_path / "toy")), device="cpu")
        assert pixels.shape == (1, 3, 8, 8)
        assert torch.equal(again.encode_images(pixels), model.encode_images(pixels))
    finally:
        BACKBONES.pop("toy_mean_colour")


def test_unknown_backbone_is_a_model_error(tiny_dual_dir):
    base = load_model(str(tiny_dual_dir), device="cpu")
    with pytest.raises(ModelError, match="Unknown image backbone 'resnet9000'.*efficientnet_lite0"):
        DualEncoderModel.create(
            image_backbone="resnet9000", text_encoder=base.module.text_encoder, tokenizer=base.tokenizer
        )
