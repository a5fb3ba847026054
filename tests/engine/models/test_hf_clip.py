"""Hugging Face CLIP folders keep transformers' own image preprocessing, odd crop margins included."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from clipstudio.engine.models import load_model


def test_a_hugging_face_clip_crops_with_transformers_own_processor(tiny_clip_dir):
    model = load_model(str(tiny_clip_dir), device="cpu")
    # 35 x 32 at input 32: a margin of 3, which transformers starts at 1 (torchvision would start at 2)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 35, 3), dtype=np.uint8))

    ours = model.preprocess([image])

    assert model.crop_offset == "floor"
    assert torch.equal(
        ours, model.image_processor(images=[image], return_tensors="pt")["pixel_values"].float()
    )
    settings = model.image_preprocessing()
    assert settings.crop_offset == "floor"
    assert torch.equal(ours, settings.normalise(np.asarray(image)[None, :, 1:33]))
