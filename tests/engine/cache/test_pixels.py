from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.cache.pixels import decode_to_array
from clipstudio.engine.data.images import load_image
from clipstudio.engine.events import ProgressUpdated
from clipstudio.engine.models import load_model
from clipstudio.engine.training.augment import BatchTransform

SIZE = 16


def _gradient(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A smooth colour image (so resampling differences stay tiny), distinct per seed."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [xx / max(1, width - 1) * 200 + seed * 7, yy / max(1, height - 1) * 200, (xx + yy) % 97 + seed * 3],
        axis=-1,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return [_gradient(tmp_path / "data" / f"img_{i}.png", 20 + 3 * i, 24, seed=i) for i in range(6)]


def _expected_crop(path: Path, size: int = SIZE) -> np.ndarray:
    """The reference pipeline, written out with PIL: shorter side to size (bicubic), centre crop."""
    im = load_image(path)
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def test_decodes_resized_centre_crops_in_input_order(images):
    out = decode_to_array(images, SIZE)
    assert out.array.shape == (6, SIZE, SIZE, 3) and out.array.dtype == np.uint8
    assert isinstance(out.array, np.memmap) and not out.array.flags.writeable
    assert out.indices == list(range(6))
    assert (out.n_cached, out.n_decoded, out.problems, out.cancelled) == (0, 6, [], False)
    for row, path in zip(out.array, images, strict=True):
        np.testing.assert_array_equal(row, _expected_crop(path))


def test_second_call_decodes_nothing_and_returns_the_same_pixels(images):
    first = decode_to_array(images, SIZE)
    second = decode_to_array(images, SIZE)
    assert (second.n_cached, second.n_decoded) == (6, 0)
    assert second.indices == first.indices
    np.testing.assert_array_equal(np.asarray(second.array), np.asarray(first.array))


def test_cache_lives_under_cache_dir_per_size(images, _isolated_home):
    decode_to_array(images[:2], SIZE)
    folder = _isolated_home / "cache" / "images" / f"{SIZE}px"
    assert (folder / "index.sqlite").is_file()
    assert len(list(folder.glob("pixels-*.u8"))) == 1
    other = decode_to_array(images[:2], SIZE + 4)  # another size is its own store
    assert other.n_decoded == 2 and other.array.shape[1:] == (SIZE + 4, SIZE + 4, 3)


def test_nothing_is_written_into_the_dataset_folder(images, tmp_path):
    data = tmp_path / "data"
    before = _snapshot(data)
    decode_to_array(images, SIZE)
    decode_to_array(images[::-1], SIZE)
    assert _snapshot(data) == before


def test_changed_file_is_decoded_again(images):
    decode_to_array(images, SIZE)
    changed = images[2]
    _gradient(changed, 40, 30, seed=9)  # new content and size
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    out = decode_to_array(images, SIZE)
    assert (out.n_cached, out.n_decoded) == (5, 1)
    np.testing.assert_array_equal(out.array[2], _expected_crop(changed))
    for i in (0, 1, 3, 4, 5):
        np.testing.assert_array_equal(out.array[i], _expected_crop(images[i]))
    again = decode_to_array(images, SIZE)
    assert (again.n_cached, again.n_decoded) == (6, 0)


def test_reordered_and_partly_new_lists_reuse_cached_images(images):
    decode_to_array(images[:4], SIZE)
    order = [images[5], images[3], images[0], images[4]]
    out = decode_to_array(order, SIZE)
    assert (out.n_cached, out.n_decoded) == (2, 2)
    for row, path in zip(out.array, order, strict=True):
        np.testing.assert_array_equal(row, _expected_crop(path))
    earlier = decode_to_array(images[:4], SIZE)  # the first list still reads back correctly
    assert earlier.n_decoded == 0
    for row, path in zip(earlier.array, images[:4], strict=True):
        np.testing.assert_array_equal(row, _expected_crop(path))


def test_unreadable_images_are_skipped_and_listed(images, tmp_path):
    broken = tmp_path / "data" / "broken.png"
    broken.write_bytes(b"not an image at all, just text")
    missing = tmp_path / "data" / "missing.png"
    paths = [images[0], broken, images[1], missing]
    out = decode_to_array(paths, SIZE)
    assert out.indices == [0, 2]
    assert out.array.shape[0] == 2
    np.testing.assert_array_equal(out.array[1], _expected_crop(images[1]))
    assert [p.path for p in out.problems] == [str(broken), str(missing)]
    assert all(p.reason for p in out.problems)
    assert str(tmp_path) not in out.problems[0].reason  # the path is in Problem.path, not repeated

    again = decode_to_array(paths, SIZE)
    assert (again.n_cached, again.n_decoded, again.indices) == (2, 0, [0, 2])
    assert [p.path for p in again.problems] == [str(broken), str(missing)]


def test_a_fixed_broken_file_is_decoded_next_time(images, tmp_path):
    broken = tmp_path / "data" / "later.png"
    broken.write_bytes(b"not yet")
    assert decode_to_array([broken], SIZE).indices == []
    _gradient(broken, 20, 20, seed=4)
    out = decode_to_array([broken], SIZE)
    assert out.indices == [0] and out.n_decoded == 1


def test_no_readable_images_gives_an_empty_array(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    out = decode_to_array([bad], SIZE)
    assert out.array.shape == (0, SIZE, SIZE, 3) and out.indices == []
    assert decode_to_array([], SIZE).array.shape == (0, SIZE, SIZE, 3)


def test_cancelling_returns_the_work_done_so_far(images):
    calls = 0

    def stop_after_two() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    out = decode_to_array(images, SIZE, should_stop=stop_after_two)
    assert out.cancelled
    assert out.indices == [0, 1] and out.array.shape[0] == 2
    np.testing.assert_array_equal(out.array[1], _expected_crop(images[1]))

    resumed = decode_to_array(images, SIZE)
    assert (resumed.n_cached, resumed.n_decoded, resumed.cancelled) == (2, 4, False)
    for row, path in zip(resumed.array, images, strict=True):
        np.testing.assert_array_equal(row, _expected_crop(path))


def test_progress_reaches_the_total_and_never_goes_back(images):
    events = []
    decode_to_array(images, SIZE, callback=events.append)
    progress = [e for e in events if isinstance(e, ProgressUpdated)]
    assert progress and all(e.stage == "decode images" and e.total == 6 for e in progress)
    done = [e.done for e in progress]
    assert done == sorted(done) and done[-1] == 6


def test_corrupt_index_is_rebuilt_with_a_warning(images, _isolated_home, caplog):
    decode_to_array(images, SIZE)
    index = _isolated_home / "cache" / "images" / f"{SIZE}px" / "index.sqlite"
    index.write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.WARNING):
        out = decode_to_array(images, SIZE)
    assert "corrupt" in caplog.text
    assert (out.n_cached, out.n_decoded) == (0, 6)
    np.testing.assert_array_equal(out.array[3], _expected_crop(images[3]))
    assert decode_to_array(images, SIZE).n_decoded == 0


def test_truncated_data_file_is_detected_and_rebuilt(images, _isolated_home, caplog):
    decode_to_array(images, SIZE)
    folder = _isolated_home / "cache" / "images" / f"{SIZE}px"
    (data,) = folder.glob("pixels-*.u8")
    with open(data, "r+b") as f:
        f.truncate(SIZE * SIZE * 3 * 2)  # rows 2.. lost, the index still points at them
    with caplog.at_level(logging.WARNING):
        out = decode_to_array(images, SIZE)
    assert out.n_decoded == 6 and "corrupt" in caplog.text
    np.testing.assert_array_equal(out.array[5], _expected_crop(images[5]))


def test_rows_reserved_but_never_indexed_are_not_served(images, _isolated_home):
    """A crash after writing pixels but before indexing them: the next run decodes those images again."""
    import sqlite3

    decode_to_array(images[:3], SIZE)
    index = _isolated_home / "cache" / "images" / f"{SIZE}px" / "index.sqlite"
    with sqlite3.connect(index) as conn:  # simulate the lost commit of the last image
        conn.execute("DELETE FROM images WHERE path = ?", (os.path.abspath(images[2]),))
    out = decode_to_array(images[:3], SIZE)
    assert (out.n_cached, out.n_decoded) == (2, 1)
    np.testing.assert_array_equal(out.array[2], _expected_crop(images[2]))


def test_a_models_own_crop_is_cached_apart_from_the_default_one(images, tmp_path):
    from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing

    root = tmp_path / "cache"
    # an open_clip model's crop: the longer side truncated, an odd margin's crop starting half a pixel later
    crop = CLIPProcessorPreprocessing(image_size=SIZE, resize_size=SIZE, crop_offset="round")
    default = decode_to_array(images, SIZE, cache_root=root)
    own = decode_to_array(images, SIZE, crop=crop, cache_root=root)

    assert own.n_decoded == len(images)  # not served from the default crop's rows
    default_store, own_store = sorted(p.name for p in root.iterdir())
    assert default_store == f"{SIZE}px" and own_store.startswith(f"{SIZE}px-")  # earlier caches stay valid
    for row, path in zip(own.array, images, strict=True):
        np.testing.assert_array_equal(row, crop.crop(load_image(path)))
    assert any(not np.array_equal(a, b) for a, b in zip(own.array, default.array, strict=True))
    with pytest.raises(ValueError, match="px squares"):
        decode_to_array(images, SIZE + 1, crop=crop, cache_root=root)


def test_explicit_cache_root_is_used(images, tmp_path, _isolated_home):
    root = tmp_path / "elsewhere"
    out = decode_to_array(images[:2], SIZE, cache_root=root)
    assert out.n_decoded == 2
    assert (root / f"{SIZE}px" / "index.sqlite").is_file()
    assert not (_isolated_home / "cache" / "images").exists()


@pytest.mark.parametrize("fixture", ["tiny_clip_dir", "tiny_dual_dir"])
def test_normalised_cache_rows_match_model_preprocess(fixture, request, tmp_path):
    model = load_model(request.getfixturevalue(fixture))
    spec = model.image_input_spec()
    assert spec.size == 32 and len(spec.mean) == 3 and len(spec.std) == 3
    # Sizes where every rounding rule gives the same resized size, so only interpolation may differ.
    paths = [
        _gradient(tmp_path / f"m{i}.png", w, h, seed=i)
        for i, (w, h) in enumerate([(48, 40), (32, 32), (64, 96)])
    ]
    decoded = decode_to_array(paths, spec.size)
    ours = BatchTransform("none", spec, train=False)(decoded.array[:])
    theirs = model.preprocess([load_image(p) for p in paths])
    assert ours.shape == theirs.shape == (3, 3, 32, 32)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    pixel_difference = ((ours - theirs) * std).abs().max().item()  # back in 0..1 pixel units
    assert pixel_difference <= 1.01 / 255


def test_unusable_cache_folder_only_costs_reuse(images, tmp_path, monkeypatch, caplog):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        out = decode_to_array(images, SIZE, cache_root=blocked)
    assert "can't be used" in caplog.text
    assert out.n_decoded == 6 and out.indices == list(range(6))
    np.testing.assert_array_equal(out.array[4], _expected_crop(images[4]))
