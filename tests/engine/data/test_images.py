"""Image decoding: every awkward file a user's folder can hold, generated in tmp_path."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipstudio.engine.data.images import DEFAULT_MAX_PIXELS, image_size, load_image
from clipstudio.engine.errors import ImageError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _save(path: Path, im: Image.Image, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def _close(a, b, tol=12) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


def _patch_png_size(path: Path, width: int, height: int) -> None:
    """Rewrite the IHDR width/height (and its CRC) of a real PNG: a header that lies."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _write_dicom(
    path: Path, pixels: np.ndarray, *, photometric="MONOCHROME2", preamble=True, **attrs
) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    if pixels is not None:
        bits = 8 if pixels.dtype == np.uint8 else 12
        ds.set_pixel_data(pixels, photometric, bits)
    for key, value in attrs.items():
        setattr(ds, key, value)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False)
    return path


def _ramp(rows=4, cols=251, top=1000) -> np.ndarray:
    """Each row runs 0..top (uint16), so column j holds round(j * top / (cols - 1))."""
    row = np.rint(np.linspace(0, top, cols)).astype(np.uint16)
    return np.tile(row, (rows, 1))


# --- ordinary images ---------------------------------------------------------------------------


def test_one_pixel_image_loads_as_rgb(tmp_path):
    path = _save(tmp_path / "dot.png", Image.new("L", (1, 1), 200))
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (1, 1)
    assert im.getpixel((0, 0)) == (200, 200, 200)
    assert image_size(path) == (1, 1)


def test_image_size_reads_width_then_height(tmp_path):
    path = _save(tmp_path / "wide.jpg", Image.new("RGB", (64, 16), RED))
    assert image_size(path) == (64, 16)
    assert load_image(path).size == (64, 16)


def test_unicode_and_space_in_path(tmp_path):
    folder = tmp_path / "Röntgen bilder 胸部"
    folder.mkdir()
    path = _save(folder / "pa view ü.png", Image.new("RGB", (5, 3), BLUE))
    assert load_image(str(path)).getpixel((2, 1)) == BLUE
    assert image_size(str(path)) == (5, 3)


def test_loading_never_modifies_the_file(tmp_path):
    path = _save(tmp_path / "x.jpg", Image.new("RGB", (20, 10), GREEN))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_image(path)
    image_size(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), RED)
    im.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = _save(tmp_path / "phone.jpg", im, exif=exif.tobytes(), quality=95)

    upright = load_image(path)
    assert upright.size == (20, 40)
    assert image_size(path) == (20, 40)
    assert _close(upright.getpixel((10, 5)), RED)  # the left side is now on top
    assert _close(upright.getpixel((10, 35)), BLUE)


def test_animated_gif_gives_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN, BLUE)]
    path = tmp_path / "cine.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    im = load_image(path)
    assert im.size == (8, 8) and _close(im.getpixel((4, 4)), RED, tol=2)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = _save(tmp_path / "print.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95)
    assert Image.open(path).mode == "CMYK"
    im = load_image(path)
    assert im.mode == "RGB" and _close(im.getpixel((8, 8)), RED)


def test_palette_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    im.putpixel((0, 0), 1)
    path = _save(tmp_path / "icon.png", im, transparency=0)
    out = load_image(path)
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((3, 3)) == WHITE  # transparent black shows as white, not black


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_channel_is_composited_on_white(tmp_path, mode):
    im = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    im.putpixel((1, 0), (0, 0, 0, 255))
    path = _save(tmp_path / f"{mode}.png", im.convert(mode))
    out = load_image(path)
    assert out.getpixel((0, 0)) == WHITE and out.getpixel((1, 0)) == (0, 0, 0)


def test_16_bit_grayscale_is_stretched_to_the_full_8_bit_range(tmp_path):
    # 12-bit data in a 16-bit PNG, as CR/DR exports often are: dividing by 65535 would be black.
    values = np.tile(np.linspace(0, 4095, 65).astype(np.uint16), (8, 1))
    path = _save(tmp_path / "xray16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I;16")
    out = np.asarray(load_image(path))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert abs(int(out[4, 32, 0]) - 128) <= 1  # linear, no gamma or percentile clipping


def test_16_bit_file_holding_8_bit_values_keeps_them(tmp_path):
    values = np.array([[10, 100, 200]], dtype=np.uint16)
    path = _save(tmp_path / "small16.png", Image.fromarray(values))
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [10, 100, 200]


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I;16B", np.array([[0, 2000, 4000]], dtype=">u2"), [0, 128, 255]),
        ("I", np.array([[-1000, 0, 1000]], dtype=np.int32), [0, 128, 255]),
        ("F", np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),
        ("F", np.array([[-3.0, 0.0, 3.0]], dtype=np.float32), [0, 128, 255]),
    ],
)
def test_wide_tiff_modes_become_8_bit(tmp_path, mode, values, expected):
    path = _save(tmp_path / "wide.tif", Image.frombytes(mode, (3, 1), values.tobytes()))
    out = np.asarray(load_image(path))[0, :, 0]
    assert np.abs(out.astype(int) - expected).max() <= 1


# --- files that are not (whole) images ----------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="file is empty"):
        load_image(path)
    with pytest.raises(ImageError, match="file is empty"):
        image_size(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match=r"missing\.png: file not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        image_size(tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_reported(tmp_path, fmt):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    path = _save(tmp_path / f"cut.{fmt.lower()}", noise, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated image data") as info:
        load_image(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(ImageError, match="truncated image data"):
        image_size(path)  # caught from the missing end marker, without decoding


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("patient 12, follow-up in 3 months\n" * 5)
    with pytest.raises(ImageError, match=r"not an image \(looks like text\)"):
        load_image(path)


def test_html_saved_as_png(tmp_path):
    path = tmp_path / "scan.png"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>")
    with pytest.raises(ImageError, match="not an image.*HTML"):
        image_size(path)


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "img.png"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n")
    with pytest.raises(ImageError, match="Git LFS pointer"):
        load_image(path)


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "blob.bmp"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    path = _save(tmp_path / "bomb.png", Image.new("L", (8, 8)))
    _patch_png_size(path, 50_000, 50_000)
    for read in (load_image, image_size):
        with pytest.raises(ImageError, match=f"over the {DEFAULT_MAX_PIXELS:,}-pixel safety limit"):
            read(path)


def test_max_pixels_is_enforced_from_the_header(tmp_path):
    path = _save(tmp_path / "big.png", Image.new("RGB", (100, 80)))
    with pytest.raises(ImageError, match="image is 100x80 pixels, over the 5,000-pixel safety limit"):
        load_image(path, max_pixels=5_000)
    with pytest.raises(ImageError, match="100x80"):
        image_size(path, max_pixels=5_000)
    assert load_image(path, max_pixels=8_000).size == (100, 80)


def test_pil_global_limit_is_left_alone(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = _save(tmp_path / "big.png", Image.new("RGB", (100, 80)))
    with pytest.raises(ImageError):
        load_image(path, max_pixels=10)
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_reports_permission_denied(tmp_path):
    path = _save(tmp_path / "locked.png", Image.new("RGB", (2, 2)))
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            load_image(path)
    finally:
        path.chmod(0o644)


# --- DICOM -------------------------------------------------------------------------------------


def test_dicom_without_window_uses_the_full_range(tmp_path):
    path = _write_dicom(tmp_path / "plain.dcm", _ramp())
    out = np.asarray(load_image(path))[0, :, 0]
    assert out[0] == 0 and out[-1] == 255
    assert abs(int(out[75]) - round(300 / 1000 * 255)) <= 1
    assert image_size(path) == (251, 4)


def test_dicom_window_center_and_width_are_applied(tmp_path):
    path = _write_dicom(tmp_path / "windowed.dcm", _ramp(), WindowCenter=500, WindowWidth=200)
    out = np.asarray(load_image(path))[0, :, 0]
    # Column j holds value 4*j: below 400 is black, above 600 is white, 500 is mid-grey.
    assert out[75] == 0 and out[99] == 0  # 300, 396
    assert out[151] == 255 and out[200] == 255  # 604, 800
    assert 120 <= out[125] <= 135  # 500
    assert out[110] < out[125] < out[140]  # a linear ramp inside the window


def test_dicom_rescale_is_applied_before_the_window(tmp_path):
    # CT-style: stored 0..1000, HU = stored - 1000; the window is given in HU.
    path = _write_dicom(
        tmp_path / "ct.dcm",
        _ramp(),
        RescaleSlope=1,
        RescaleIntercept=-1000,
        WindowCenter=-500,
        WindowWidth=200,
    )
    out = np.asarray(load_image(path))[0, :, 0]
    assert out[75] == 0 and out[200] == 255 and 120 <= out[125] <= 135


def test_dicom_monochrome1_is_inverted(tmp_path):
    normal = np.asarray(load_image(_write_dicom(tmp_path / "m2.dcm", _ramp())))
    inverted = np.asarray(load_image(_write_dicom(tmp_path / "m1.dcm", _ramp(), photometric="MONOCHROME1")))
    assert inverted[0, 0, 0] == 255 and inverted[0, -1, 0] == 0
    assert np.array_equal(inverted, 255 - normal)


def test_multiframe_dicom_gives_the_middle_frame(tmp_path):
    stack = np.stack([np.full((6, 5), v, dtype=np.uint16) for v in (100, 500, 900)])
    path = _write_dicom(tmp_path / "stack.dcm", stack, WindowCenter=500, WindowWidth=1001)
    out = np.asarray(load_image(path))
    assert out.shape == (6, 5, 3)
    assert 120 <= out[0, 0, 0] <= 135  # the frame holding 500


def test_rgb_dicom_keeps_its_colours(tmp_path):
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[:, :3] = RED
    rgb[:, 3:] = BLUE
    path = _write_dicom(tmp_path / "photo.dcm", rgb, photometric="RGB")
    out = load_image(path)
    assert out.getpixel((0, 0)) == RED and out.getpixel((5, 3)) == BLUE


def test_dicom_is_recognised_by_its_preamble_whatever_the_name(tmp_path):
    path = _write_dicom(tmp_path / "IM0001", _ramp())
    assert load_image(path).size == (251, 4)
    assert image_size(path) == (251, 4)


def test_dcm_without_preamble_still_loads(tmp_path):
    path = _write_dicom(tmp_path / "legacy.dcm", _ramp(), preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    assert load_image(path).size == (251, 4)


def test_dicom_without_pixel_data(tmp_path):
    path = _write_dicom(tmp_path / "report.dcm", None)
    for read in (load_image, image_size):
        with pytest.raises(ImageError, match="DICOM file has no pixel data"):
            read(path)


def test_non_dicom_named_dcm_is_not_forced(tmp_path):
    text = tmp_path / "readme.dcm"
    text.write_text("exported by scanner console\n" * 10)
    with pytest.raises(ImageError, match="not an image"):
        load_image(text)
    png = _save(tmp_path / "really_png.dcm", Image.new("RGB", (3, 3)), format="PNG")
    with pytest.raises(ImageError, match="not a DICOM file"):
        load_image(png)


def test_permission_error_is_reported_even_as_root(tmp_path, monkeypatch):
    from clipstudio.engine.data import images

    path = _save(tmp_path / "locked.png", Image.new("RGB", (2, 2)))

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", refuse, raising=False)
    with pytest.raises(ImageError, match=r"locked\.png: permission denied"):
        image_size(path)


def test_jpeg_with_data_after_the_end_marker_is_fine(tmp_path):
    # Some phones append several KB of metadata after the JPEG end marker.
    path = _save(tmp_path / "phone.jpg", Image.new("RGB", (12, 9), GREEN))
    path.write_bytes(path.read_bytes() + b"SEFH" + bytes(4096))
    assert image_size(path) == (12, 9)
    assert load_image(path).size == (12, 9)
