"""The split image preprocessing (uint8 crop per image, one normalisation per batch) against the reference paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.image_preprocessing import (
    CLIPProcessorPreprocessing,
    ImagePreprocessing,
    normalise_uint8,
)

# (width, height): square, portrait, landscape, smaller and larger than the model input, and
# sizes where rounding and truncating the scaled longer side differ (30 * 45 / 29 = 46.55).
SIZES = [(32, 32), (7, 3), (3, 7), (29, 45), (45, 29), (61, 100), (100, 61), (33, 32), (500, 37)]


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _clip_processor(**overrides):
    from transformers import CLIPImageProcessorPil

    settings = dict(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30})
    return CLIPImageProcessorPil(**{**settings, **overrides})


@pytest.mark.parametrize("resample", [3, 2])  # bicubic (CLIP's), bilinear
def test_split_clip_preprocessing_gives_the_processors_exact_pixels(resample):
    processor = _clip_processor(resample=resample)
    split = CLIPProcessorPreprocessing.from_processor(processor)
    assert split is not None
    for seed, (width, height) in enumerate(SIZES):
        image = _noise(width, height, seed)
        theirs = processor(images=[image], return_tensors="pt")["pixel_values"]
        ours = split.normalise(split.crop(image)[None])
        assert torch.equal(ours, theirs), (width, height)


@pytest.mark.parametrize(
    "overrides",
    [
        {"do_center_crop": False},
        {"do_normalize": False},
        {"size": {"height": 30, "width": 30}},
        {"crop_size": {"height": 40, "width": 40}},  # larger than the resize: the processor pads
        {"crop_size": {"height": 30, "width": 20}},
        {"image_mean": 0.5},
    ],
)
def test_clip_processor_settings_it_cannot_reproduce_are_left_to_the_processor(overrides):
    assert CLIPProcessorPreprocessing.from_processor(_clip_processor(**overrides)) is None


def test_preprocessing_is_its_crop_then_one_batch_normalisation():
    prep = ImagePreprocessing(image_size=24, resize_size=28, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    images = [_noise(w, h, seed) for seed, (w, h) in enumerate(SIZES)]
    crops = np.stack([prep.crop(im) for im in images])
    assert crops.shape == (len(SIZES), 24, 24, 3) and crops.dtype == np.uint8
    assert torch.equal(prep(images), prep.normalise(crops))


def test_batch_normalisation_equals_the_float_formula_bit_for_bit():
    crops = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    expected = (crops.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    out = normalise_uint8(crops, mean, std)
    assert out.shape == (3, 3, 5, 7) and out.dtype == torch.float32
    assert torch.equal(out, torch.from_numpy(np.ascontiguousarray(expected.transpose(0, 3, 1, 2))))


def _torchvision_resize_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """open_clip's eval transform ``Resize(size)`` + ``CenterCrop(size)``, as torchvision 0.28 computes the boxes.

    torchvision can't be installed beside the app, so its two formulas are reproduced here:
    ``_compute_resized_output_size``: the shorter side becomes ``size``, the longer ``int(size * long / short)``;
    ``center_crop``: ``crop_top = int(round((image_height - crop_height) / 2.0))``, the same for the left.
    """
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC) if (new_w, new_h) != (w, h) else image
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(resized.crop((left, top, left + size, top + size)))


# margins of 3 and 7 (35 - 32, 32 + 7): torchvision's rounding starts the crop one pixel later than floor
ODD_MARGINS = [(35, 32), (32, 39), (35, 39), (33, 32), (37, 32), *SIZES]


def test_round_crop_offset_gives_torchvisions_centre_crop_pixels():
    prep = CLIPProcessorPreprocessing(image_size=32, resize_size=32, crop_offset="round")
    floor = CLIPProcessorPreprocessing(image_size=32, resize_size=32)
    differs = 0
    for seed, (width, height) in enumerate(ODD_MARGINS):
        image = _noise(width, height, seed)
        expected = _torchvision_resize_center_crop(image, 32)
        assert np.array_equal(prep.crop(image), expected), (width, height)
        differs += not np.array_equal(floor.crop(image), expected)
    assert differs >= 3  # the one-pixel shift the floor offset had on these sizes


def test_crop_offset_survives_saving_and_the_default_keeps_old_manifests():
    prep = CLIPProcessorPreprocessing(image_size=32, crop_offset="round")
    assert CLIPProcessorPreprocessing.from_dict(prep.to_dict()) == prep
    assert "crop_offset" not in ImagePreprocessing().to_dict()  # models saved before it keep their fingerprint
    with pytest.raises(ModelError, match="crop offset"):
        ImagePreprocessing(crop_offset="ceil")
