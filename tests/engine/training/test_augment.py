from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.models.image_preprocessing import ImageInputSpec
from clipstudio.engine.training.augment import PRESETS, BatchTransform

SPEC = ImageInputSpec(
    size=32, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)
)


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)


def _plain(batch: np.ndarray) -> np.ndarray:
    """The normalisation models apply, as ImagePreprocessing writes it (float32 numpy)."""
    mean, std = np.asarray(SPEC.mean, np.float32), np.asarray(SPEC.std, np.float32)
    return ((batch.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)


def _ramp(horizontal: bool, n: int = 16) -> np.ndarray:
    """Images dark on the left (or top) and bright on the right (or bottom)."""
    ramp = np.linspace(0, 255, 32, dtype=np.float32)
    img = np.broadcast_to(ramp[None, :] if horizontal else ramp[:, None], (32, 32))
    return np.repeat(np.repeat(img[None, :, :, None], 3, axis=3), n, axis=0).astype(np.uint8)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("train", [True, False])
def test_output_is_a_normalised_float_batch(preset, train, batch):
    out = BatchTransform(preset, SPEC, train=train, seed=0)(batch)
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
    lo = (0 - max(SPEC.mean)) / min(SPEC.std)
    hi = (1 - min(SPEC.mean)) / min(SPEC.std)
    assert lo - 1e-5 <= out.min().item() and out.max().item() <= hi + 1e-5


@pytest.mark.parametrize("preset", PRESETS)
def test_eval_is_plain_normalisation_whatever_the_preset(preset, batch):
    transform = BatchTransform(preset, SPEC, train=False, seed=0)
    state = transform.state_dict()["generator_state"].clone()
    out = transform(batch)
    np.testing.assert_array_equal(out.numpy(), _plain(batch))
    assert torch.equal(transform.state_dict()["generator_state"], state)  # no random numbers drawn
    assert not transform.is_random


def test_none_preset_in_training_is_exactly_plain_normalisation(batch):
    out = BatchTransform("none", SPEC, train=True, seed=3)(torch.from_numpy(batch))
    np.testing.assert_array_equal(out.numpy(), _plain(batch))


def test_read_only_memmap_slices_are_accepted(batch, tmp_path):
    path = tmp_path / "rows.u8"
    batch.tofile(path)
    rows = np.memmap(path, dtype=np.uint8, mode="r", shape=batch.shape)
    out = BatchTransform("standard", SPEC, train=True, seed=0)(rows[2:6])
    assert out.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("preset", ["minimal", "standard"])
def test_training_presets_change_pixels(preset, batch):
    out = BatchTransform(preset, SPEC, train=True, seed=0)(batch)
    assert not torch.allclose(out, torch.from_numpy(_plain(batch)), atol=1e-3)


def test_standard_keeps_images_recognisable():
    """Mild augmentation: the augmented image stays strongly correlated with the original."""
    smooth = _ramp(horizontal=False)
    out = BatchTransform("standard", SPEC, train=True, seed=1)(smooth)
    plain = torch.from_numpy(_plain(smooth))
    for a, b in zip(out, plain, strict=True):
        corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
        assert corr > 0.8


def test_flips_are_horizontal_only():
    transform = BatchTransform("standard", SPEC, train=True, seed=0)
    left_right = transform(_ramp(horizontal=True, n=64))
    flipped = left_right[:, :, :, :8].mean(dim=(1, 2, 3)) > left_right[:, :, :, -8:].mean(dim=(1, 2, 3))
    assert 10 < int(flipped.sum()) < 54  # about half the images are mirrored left-right

    top_bottom = transform(_ramp(horizontal=False, n=64))
    upside_down = top_bottom[:, :, :8, :].mean(dim=(1, 2, 3)) > top_bottom[:, :, -8:, :].mean(dim=(1, 2, 3))
    assert int(upside_down.sum()) == 0  # never flipped vertically


def test_same_seed_gives_the_same_stream(batch):
    a, b = (
        BatchTransform("standard", SPEC, train=True, seed=7),
        BatchTransform("standard", SPEC, train=True, seed=7),
    )
    for _ in range(2):
        assert torch.equal(a(batch), b(batch))
    other = BatchTransform("standard", SPEC, train=True, seed=8)
    assert not torch.equal(other(batch), BatchTransform("standard", SPEC, train=True, seed=7)(batch))


def test_consecutive_batches_differ(batch):
    transform = BatchTransform("standard", SPEC, train=True, seed=0)
    assert not torch.equal(transform(batch), transform(batch))


def test_resuming_from_a_saved_state_replays_the_next_batch(batch, tmp_path):
    original = BatchTransform("standard", SPEC, train=True, seed=11)
    original(batch)
    save_file(original.state_dict(), tmp_path / "aug.safetensors")  # how a checkpoint stores it
    expected = original(batch)

    resumed = BatchTransform("standard", SPEC, train=True, seed=None)
    resumed.load_state_dict(load_file(tmp_path / "aug.safetensors"))
    assert torch.equal(resumed(batch), expected)


def test_state_must_be_a_generator_state():
    transform = BatchTransform("minimal", SPEC, train=True, seed=0)
    with pytest.raises(ValueError):
        transform.load_state_dict({"generator_state": torch.zeros(3)})


def test_unknown_preset_names_the_presets():
    with pytest.raises(ConfigError) as info:
        BatchTransform("heavy", SPEC, train=True)
    assert all(name in str(info.value) for name in PRESETS)


def test_other_input_sizes_are_resized_to_the_model_size():
    big = np.full((2, 48, 48, 3), 128, dtype=np.uint8)
    for train in (True, False):
        out = BatchTransform("minimal", SPEC, train=train, seed=0)(big)
        assert out.shape == (2, 3, 32, 32)


def test_empty_batch():
    out = BatchTransform("standard", SPEC, train=True, seed=0)(np.zeros((0, 32, 32, 3), np.uint8))
    assert out.shape == (0, 3, 32, 32)


def test_wrong_input_is_refused():
    with pytest.raises(ValueError):
        BatchTransform("none", SPEC, train=False)(np.zeros((2, 32, 32, 3), np.float32))
