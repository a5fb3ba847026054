"""Bad and awkward image files inside an otherwise good class-folder dataset, one test id per case.

Every file is generated here. A bad file is skipped with one message naming it and the reason, the
other images load and are scored, and nothing in the dataset folder changes (see harness.py). An
awkward but valid file (16-bit, CMYK, palette transparency, animation, EXIF rotation, 1x1, long or
unicode names) loads as upright RGB and raises no problem at all.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipstudio.engine.data.images import image_size, load_image
from tests.fixtures_data import write_png
from tests.reliability.harness import Harness, assert_one_clear_message

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_dataset(root: Path) -> Path:
    """Two classes of two good images each; the case adds its file to class ``a``."""
    for i, colour in enumerate([(200, 40, 40), (180, 60, 60)]):
        write_png(root / "a" / f"a_{i}.png", colour)
    for i, colour in enumerate([(40, 40, 200), (60, 60, 180)]):
        write_png(root / "b" / f"b_{i}.png", colour)
    return root


def _noise(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _truncated(path: Path, fmt: str) -> Path:
    _noise().save(path, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _bomb(path: Path) -> Path:
    """A real 8x8 PNG whose header claims 50,000 x 50,000 pixels (CRC fixed, so it parses)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 50_000, 50_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _dicom_without_pixels(path: Path) -> Path:
    """A valid DICOM file (a structured report would look like this) with no PixelData element."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)
    return path


def _symlink(link: Path, target: Path) -> Path:
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")
    return link


def _permission_denied_simulated(folder: Path, monkeypatch) -> Path:
    # Root reads any file whatever its mode, so the refusal is simulated where images are opened.
    from clipstudio.engine.data import images

    path = write_png(folder / "locked.png", (10, 10, 10))
    real_open = open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(images, "open", guarded_open, raising=False)
    return path


def _permission_denied_real(folder: Path, monkeypatch) -> Path:
    path = write_png(folder / "locked.png", (10, 10, 10))
    path.chmod(0)
    return path


# case id -> (make the file in class folder ``a``, the reason the problem must give)
BAD: dict[str, tuple[Callable[[Path, pytest.MonkeyPatch], Path], str]] = {
    "zero_byte_file": (lambda d, mp: _write(d / "empty.png", b""), "file is empty"),
    "truncated_png": (lambda d, mp: _truncated(d / "cut.png", "PNG"), "truncated image data"),
    "truncated_jpeg": (lambda d, mp: _truncated(d / "cut.jpg", "JPEG"), "truncated image data"),
    "text_named_jpg": (
        lambda d, mp: _write(d / "notes.jpg", b"patient 12, follow-up in 3 months\n" * 5),
        "not an image (looks like text)",
    ),
    "html_saved_as_png": (
        lambda d, mp: _write(d / "scan.png", b"<!DOCTYPE html>\n<html><head><title>Sign in</title></html>"),
        "not an image (looks like an HTML page",
    ),
    "git_lfs_pointer": (
        lambda d, mp: _write(d / "lfs.png", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
        "Git LFS pointer",
    ),
    "decompression_bomb": (lambda d, mp: _bomb(d / "bomb.png"), "over the 89,478,485-pixel safety limit"),
    "dicom_without_pixel_data": (lambda d, mp: _dicom_without_pixels(d / "report.dcm"), "no pixel data"),
    "unreadable_file_simulated": (_permission_denied_simulated, "permission denied"),
    "symlink_loop": (lambda d, mp: _symlink(d / "loop.png", d / "loop.png"), "looping symbolic link"),
    "broken_symlink": (lambda d, mp: _symlink(d / "gone.png", d / "deleted.png"), "broken or looping"),
}

BAD_PARAMS = [pytest.param(*case, id=name) for name, case in BAD.items()] + [
    pytest.param(
        _permission_denied_real,
        "permission denied",
        id="unreadable_file_real",
        marks=pytest.mark.skipif(IS_ROOT or os.name == "nt", reason="root can read any file"),
    )
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "reason"), BAD_PARAMS)
def test_bad_image_is_skipped_with_one_message(tmp_path, monkeypatch, harness: Harness, make, reason):
    root = make_dataset(tmp_path / "data")
    bad = make(root / "a", monkeypatch)
    try:
        loaded = harness.loads(root, watch=tmp_path)
    finally:
        if bad.exists() and not bad.is_symlink():
            bad.chmod(0o644)

    assert_one_clear_message(loaded, bad, reason)
    assert loaded.n_scored == 4  # every good image was still scored
    assert {"a_0.png", "a_1.png", "b_0.png", "b_1.png"} <= {p.name for p in loaded.dataset.paths}


# case id -> (make the file in class folder ``a``, its upright (width, height))
AWKWARD: dict[str, tuple[Callable[[Path], Path], tuple[int, int]]] = {
    "16_bit_grayscale": (
        lambda d: _saved(
            d / "xray16.png", Image.fromarray(np.tile(np.arange(0, 4096, 512, dtype=np.uint16), (4, 1)))
        ),
        (8, 4),
    ),
    "cmyk_jpeg": (lambda d: _saved(d / "print.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0))), (16, 16)),
    "palette_with_transparency": (lambda d: _palette(d / "icon.png"), (4, 4)),
    "animated_gif": (lambda d: _animated(d / "cine.gif"), (8, 8)),
    "exif_rotated_jpeg": (lambda d: _exif_rotated(d / "phone.jpg"), (20, 40)),
    "one_pixel_image": (lambda d: _saved(d / "dot.png", Image.new("L", (1, 1), 200)), (1, 1)),
    "long_ascii_name_255_bytes": (lambda d: write_png(d / ("x" * 251 + ".png")), (8, 8)),
    "long_unicode_name_253_bytes": (lambda d: write_png(d / ("肺" * 83 + ".png")), (8, 8)),
    "unicode_and_spaces_in_path": (lambda d: write_png(d / "Röntgen bilder 胸部" / "pa view ü.png"), (8, 8)),
}


def _saved(path: Path, im: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def _palette(path: Path) -> Path:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    return _saved(path, im, transparency=0)


def _animated(path: Path) -> Path:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def _exif_rotated(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    return _saved(path, Image.new("RGB", (40, 20), (90, 90, 30)), exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize(("make", "size"), [pytest.param(*case, id=name) for name, case in AWKWARD.items()])
def test_awkward_but_valid_image_loads_without_a_problem(tmp_path, harness: Harness, make, size):
    root = make_dataset(tmp_path / "data")
    path = make(root / "a")

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.report.problems == []
    assert path.resolve() in loaded.dataset.paths
    assert loaded.n_scored == 5
    assert "warning" not in loaded.zeroshot.err
    image = load_image(path)
    assert image.mode == "RGB" and image.size == size == image_size(path)
