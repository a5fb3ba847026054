"""The one thumbnail decoder and the loader both image grids use."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from clipstudio.engine.errors import ImageError
from clipstudio.gui.thumbnails import THUMB_SIZE, ThumbnailLoader, decode_thumbnail


def test_a_large_image_shrinks_to_fit_keeping_its_shape(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 150), (10, 200, 30)).save(path)
    width, height, data = decode_thumbnail(str(path))
    assert (width, height) == (THUMB_SIZE, THUMB_SIZE // 2)
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    assert tuple(pixels[height // 2, width // 2]) == (10, 200, 30)


def test_a_small_image_is_scaled_up_to_the_tile(tmp_path):
    path = tmp_path / "small.png"
    Image.new("L", (28, 14), 90).save(path)  # grey, like MedMNIST; shown as RGB
    width, height, data = decode_thumbnail(str(path), size=64)
    assert (width, height) == (64, 32) and len(data) == 64 * 32 * 3


def test_an_unreadable_file_raises_the_engines_image_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not an image"):
        decode_thumbnail(str(bad))


@pytest.fixture
def loader(qtbot):
    created = []

    def make(**kwargs) -> ThumbnailLoader:
        made = ThumbnailLoader(**kwargs)
        created.append(made)
        return made

    yield make
    for made in created:
        made.shutdown()


def test_loader_decodes_on_request_and_remembers_unreadable_files(qtbot, loader, tmp_path, tiny_png):
    good = str(tiny_png(tmp_path / "good.png", (200, 40, 40)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    thumbnails = loader()
    assert thumbnails.pixmap(good) is None  # asking for the pixmap never starts a decode
    assert thumbnails.pending() == 0
    with qtbot.waitSignals([thumbnails.loaded, thumbnails.loaded], timeout=10_000):
        thumbnails.request(good)
        thumbnails.request(str(bad))
    assert thumbnails.pixmap(good).width() == THUMB_SIZE
    assert thumbnails.error(good) is None
    assert thumbnails.error(str(bad)).startswith("not an image") and str(tmp_path) not in thumbnails.error(
        str(bad)
    )
    thumbnails.request(good)  # known already: not decoded again
    assert thumbnails.pending() == 0 and thumbnails.requested == [good, str(bad)]


class GatedDecoder:
    """Holds every decode until ``gate`` is set; records the paths decoded."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.order: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: str, size: int):
        self.gate.wait(10)
        with self._lock:
            self.order.append(path)
        return 1, 1, b"\x00\x00\x00"


def test_newest_requests_are_decoded_first_and_cancelled_ones_not_at_all(qtbot, loader):
    decoder = GatedDecoder()
    thumbnails = loader(decode=decoder)
    busy = [f"/busy/{i}.png" for i in range(8)]  # more than the loader's threads: some wait in the queue
    for path in [*busy, "/old.png", "/middle.png", "/new.png"]:
        thumbnails.request(path)
    assert thumbnails.pending() == 11
    running = len(thumbnails.requested)
    decoder.gate.set()
    qtbot.waitUntil(lambda: thumbnails.pending() == 0, timeout=10_000)
    waited = busy[running:]
    assert thumbnails.requested[running:] == ["/new.png", "/middle.png", "/old.png", *reversed(waited)]
    assert sorted(decoder.order) == sorted(thumbnails.requested)

    decoder.gate.clear()
    for path in [*(f"/busy2/{i}.png" for i in range(running)), "/dropped.png"]:
        thumbnails.request(path)
    thumbnails.cancel_pending()  # e.g. the grid now shows other images
    decoder.gate.set()
    qtbot.waitUntil(lambda: thumbnails.pending() == 0, timeout=10_000)
    assert "/dropped.png" not in decoder.order


def test_only_the_most_recent_thumbnails_are_kept(qtbot, loader):
    thumbnails = loader(decode=lambda path, size: (1, 1, b"\x80\x80\x80"), cache_items=2)
    for path in ("/a.png", "/b.png", "/c.png"):
        with qtbot.waitSignal(thumbnails.loaded, timeout=10_000):
            thumbnails.request(path)
    assert thumbnails.pixmap("/a.png") is None
    assert thumbnails.pixmap("/b.png") is not None and thumbnails.pixmap("/c.png") is not None
