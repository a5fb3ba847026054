"""Image decoding: EXIF orientation, mode conversion to RGB, decompression-bomb cap, DICOM.

Every failure is an ``ImageError("<path>: <short reason>")``; files are only ever read.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from clipstudio.engine.errors import ImageError

# File extensions readers treat as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom"}
)

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})

DEFAULT_MAX_PIXELS = 89_478_485
"""Largest image (width x height) we decode: PIL's own default bomb threshold (about 9459 x 9459).

A corrupt or hostile header can declare billions of pixels and make the decoder allocate
gigabytes; we refuse those from the header, before decoding. PIL keeps its own global guard
(an error at twice its ``Image.MAX_IMAGE_PIXELS``), which we leave untouched, so raising
``max_pixels`` above 178,956,970 has no effect unless the application raises PIL's limit too.
"""

_HEAD_BYTES = 2048
_TAIL_BYTES = 1024
_ORIENTATION_SWAPS_AXES = frozenset({5, 6, 7, 8})  # EXIF orientations that rotate by 90 degrees
_WHITE = (255, 255, 255, 255)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image (any PIL format or DICOM) to a fully loaded RGB ``PIL.Image``, upright."""
    path = Path(path)
    with _open_file(path) as f:
        head = _read_head(path, f)
        if _is_dicom(path, head):
            return _load_dicom(path, f, head, max_pixels)
        with _open_pil(path, f, head, max_pixels) as im:
            try:
                im.load()
            except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as e:
                raise ImageError(f"{path}: {_decode_reason(e)}") from None
            return _to_rgb(_upright(im), path)


def image_size(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the upright image, from the header only (no pixel decoding).

    Besides the header checks of :func:`load_image`, PNG and JPEG files are checked for their
    end marker, which catches most truncated downloads; only a file without one is decoded.
    """
    path = Path(path)
    with _open_file(path) as f:
        head = _read_head(path, f)
        if _is_dicom(path, head):
            ds = _read_dicom(path, f, head, header_only=True)
            return _dicom_size(path, ds, max_pixels)
        with _open_pil(path, f, head, max_pixels) as im:
            if not _ends_with_marker(path, f, im.format):
                # Probably cut short, but some cameras append data after the end marker:
                # decode this one file to be sure.
                try:
                    im.load()
                except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as e:
                    raise ImageError(f"{path}: {_decode_reason(e)}") from None
            width, height = im.size
            if _exif_orientation(im) in _ORIENTATION_SWAPS_AXES:
                width, height = height, width
            return width, height


# --- files -------------------------------------------------------------------------------------


def _open_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # the callers close it (with-statement)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from None


def _read_head(path: Path, f: BinaryIO) -> bytes:
    try:
        head = f.read(_HEAD_BYTES)
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if not head:
        raise ImageError(f"{path}: file is empty")
    return head


def _describe_non_image(head: bytes) -> str:
    """A short guess at what a file that no decoder recognises actually is."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"version https://git-lfs"):
        return "not an image (a Git LFS pointer file; run 'git lfs pull')"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:512]:
        return "not an image (looks like an HTML page, e.g. a saved error or login page)"
    if b"<svg" in text[:512]:
        return "not an image (SVG vector graphics are not supported)"
    if _looks_like_text(head):
        return "not an image (looks like text)"
    return "not an image (unknown or unsupported format)"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the head is still text.
        try:
            decoded = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(c.isprintable() or c in "\r\n\t" for c in decoded)
    return printable >= 0.95 * max(1, len(decoded))


def _decode_reason(e: BaseException) -> str:
    message = str(e)
    if "truncated" in message.lower() or isinstance(e, EOFError):
        return "truncated image data"
    return f"corrupt image data ({message or type(e).__name__})"


# --- PIL formats -------------------------------------------------------------------------------

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _open_pil(path: Path, f: BinaryIO, head: bytes, max_pixels: int) -> Image.Image:
    """Identify the file and read its header; refuses images over ``max_pixels`` before decoding."""
    f.seek(0)
    try:
        im = Image.open(f)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: {_describe_non_image(head)}") from None
    except Image.DecompressionBombError as e:
        # PIL's own (global) guard fired first; report it in our terms.
        found = _BOMB_PIXELS.search(str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "too large"
        raise ImageError(f"{path}: image is {size}, over the {max_pixels:,}-pixel safety limit") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as e:
        raise ImageError(f"{path}: {_decode_reason(e)}") from None
    width, height = im.size
    try:
        _check_pixel_count(path, width, height, max_pixels)
    except ImageError:
        im.close()
        raise
    return im


def _check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: image is {width}x{height} pixels (empty)")
    if width * height > max_pixels:
        raise ImageError(
            f"{path}: image is {width}x{height} pixels, over the {max_pixels:,}-pixel safety limit"
        )


def _ends_with_marker(path: Path, f: BinaryIO, fmt: str | None) -> bool:
    """Cheap truncation check: PNG and JPEG files end with a marker; other formats pass."""
    if fmt == "PNG":
        marker = b"IEND"
    elif fmt in ("JPEG", "MPO"):
        marker = b"\xff\xd9"
    else:
        return True
    try:
        size = f.seek(0, 2)
        f.seek(max(0, size - _TAIL_BYTES))
        return marker in f.read(_TAIL_BYTES)
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from None


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a broken EXIF block must not make a readable image unreadable
        return 1


def _upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF: keep the pixels as stored
        return im


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparent pixels become white (how a viewer shows them)."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(im)), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(f"{path}: unsupported colour mode {mode}") from None


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Grey values of any depth to 0..255.

    Values already inside 0..255 are kept as they are (8-bit data in a wider container).
    Anything wider is stretched linearly from its own min to its own max rather than divided by
    65535: medical 16-bit PNG/TIFF files usually hold 10-12 bit data (max 1023 or 4095), which a
    fixed /65535 would turn nearly black. Floats within 0..1 are treated as 0..1 intensities.
    """
    data = values.astype(np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, np.nanmin(data[finite]) if finite.any() else 0.0)
    if data.size == 0:
        return data.astype(np.uint8)
    lo, hi = float(data.min()), float(data.max())
    if values.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return np.rint(data * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(data).astype(np.uint8)
    return _linear_to_uint8(data, lo, hi)


def _linear_to_uint8(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo..hi`` linearly to 0..255, clipping outside."""
    if hi <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = (np.asarray(data, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


# --- DICOM -------------------------------------------------------------------------------------

_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _is_dicom(path: Path, head: bytes) -> bool:
    return head[128:132] == b"DICM" or path.suffix.lower() in DICOM_EXTENSIONS


def _read_dicom(path: Path, f: BinaryIO, head: bytes, *, header_only: bool):
    """Parse a DICOM file; ``header_only`` leaves large values (the pixels) unread."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    has_marker = head[128:132] == b"DICM"
    if not has_marker and _looks_like_text(head):
        raise ImageError(f"{path}: {_describe_non_image(head)}")
    f.seek(0)
    try:
        # Without the 'DICM' marker only a .dcm/.dicom name brings us here; old files written
        # without the preamble exist, so we parse leniently and then insist on image elements.
        ds = pydicom.dcmread(f, force=not has_marker, defer_size="64 KB" if header_only else None)
    except InvalidDicomError:
        raise ImageError(f"{path}: not a DICOM file (no 'DICM' marker)") from None
    except Exception as e:  # pydicom raises many types on malformed files
        if not has_marker:
            raise ImageError(f"{path}: not a DICOM file (no 'DICM' marker)") from None
        raise ImageError(f"{path}: corrupt DICOM file ({e})") from None
    if not has_marker and not any(k in ds for k in ("SOPClassUID", "Rows", *_PIXEL_DATA_KEYWORDS)):
        raise ImageError(f"{path}: not a DICOM file (no 'DICM' marker)")
    if not any(k in ds for k in _PIXEL_DATA_KEYWORDS):
        raise ImageError(f"{path}: DICOM file has no pixel data")
    return ds


def _dicom_size(path: Path, ds, max_pixels: int) -> tuple[int, int]:
    try:
        width, height = int(ds.Columns), int(ds.Rows)
    except (AttributeError, TypeError, ValueError):
        raise ImageError(f"{path}: DICOM file has no image size (Rows/Columns missing)") from None
    _check_pixel_count(path, width, height, max_pixels)
    return width, height


def _load_dicom(path: Path, f: BinaryIO, head: bytes, max_pixels: int) -> Image.Image:
    ds = _read_dicom(path, f, head, header_only=False)
    _dicom_size(path, ds, max_pixels)
    frames = _dicom_int(ds, "NumberOfFrames", 1)
    try:
        pixels = _dicom_pixels(ds, frames)
    except ImageError:
        raise
    except Exception as e:  # decoders raise many types; a missing plugin is the usual cause
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed:
            raise ImageError(
                f"{path}: compressed DICOM ({syntax.name}) needs a decoder that is not installed "
                "or failed (e.g. pylibjpeg)"
            ) from None
        raise ImageError(f"{path}: DICOM pixel data could not be decoded ({e})") from None

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(pixels, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
        return Image.fromarray(_linear_to_uint8(rgb, 0, 2**bits - 1), "RGB")
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        # pydicom already converts YBR to RGB; only the bit depth is left to fix.
        rgb = pixels[..., :3]
        if rgb.dtype != np.uint8:
            bits = _dicom_int(ds, "BitsStored", 8 * rgb.dtype.itemsize)
            rgb = _linear_to_uint8(rgb, 0, 2**bits - 1)
        return Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if pixels.ndim != 2:
        raise ImageError(f"{path}: unsupported DICOM pixel layout {pixels.shape}")

    grey = _dicom_grey_to_uint8(pixels, ds)
    if photometric == "MONOCHROME1":  # 0 means white in MONOCHROME1
        grey = 255 - grey
    return Image.fromarray(grey, "L").convert("RGB")


def _dicom_pixels(ds, frames: int) -> np.ndarray:
    """The pixels of one frame: the middle one of a multi-frame file (cine, CT/MR stacks)."""
    middle = frames // 2 if frames > 1 else None
    try:
        from pydicom.pixels import pixel_array
    except ImportError:  # pydicom 2.x decodes every frame
        pixels = ds.pixel_array
        return pixels[middle] if middle is not None else pixels
    return pixel_array(ds, index=middle)


def _dicom_int(ds, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def _dicom_grey_to_uint8(pixels: np.ndarray, ds) -> np.ndarray:
    """Rescale slope/intercept (modality LUT), then the file's own VOI window or LUT, to 0..255.

    Without a window in the file the full data range is used (min-max), as viewers do.
    """
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi, apply_voi_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi, apply_voi_lut

    try:
        values = apply_modality_lut(pixels, ds)
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        values = pixels  # a malformed rescale: the stored values still make a viewable image
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if not (has_lut or has_window):
        return _minmax_to_uint8(values)
    try:
        if has_lut:
            values = np.rint(values).astype(np.int64)
            shown = apply_voi_lut(values, ds)
            descriptor = ds.VOILUTSequence[0].LUTDescriptor
            entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
            table = apply_voi(np.arange(first, first + entries), ds)
            lo, hi = float(table.min()), float(table.max())
        else:
            shown = apply_voi_lut(values, ds)
            # The window's output range (pydicom derives it from BitsStored and the rescale):
            # probe it with values far below and above any window.
            with np.errstate(over="ignore"):
                lo, hi = (float(v) for v in apply_voi_lut(np.array([-1e30, 1e30]), ds))
    except (ValueError, AttributeError, TypeError, IndexError, KeyError, NotImplementedError):
        # A malformed window (e.g. width 0) is common enough that a full-range view beats refusing.
        return _minmax_to_uint8(values)
    return _linear_to_uint8(shown, lo, hi)


def _minmax_to_uint8(values: np.ndarray) -> np.ndarray:
    data = np.asarray(values, dtype=np.float32)
    return _linear_to_uint8(data, float(data.min()), float(data.max()))
