"""Thumbnails for the image grids: one decoder, and one loader that runs it off the GUI thread.

``decode_thumbnail`` reads any image the engine reads (DICOM, EXIF orientation, 16-bit greys) and
fits it in a ``size`` px square; small images (e.g. 28 px MedMNIST) are scaled up so a tile is not
a dot. ``ThumbnailLoader`` decodes on a small private thread pool, newest requests first, so
scrolling fast never leaves the screen waiting behind tiles that have already scrolled away. The
GUI thread turns the bytes into pixmaps and keeps the most recent ones; unreadable files are
remembered with their reason.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from PIL import Image
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from clipstudio.engine.data.images import load_image

THUMB_SIZE = 96
CACHE_ITEMS = 1500  # ~55 MB of 96 px pixmaps
MAX_QUEUED = 300  # older requests than this were scrolled past; they are asked again if shown again

# (width, height, RGB bytes)
Decoded = tuple[int, int, bytes]
DecodeFn = Callable[[str, int], Decoded]


def decode_thumbnail(path: str, size: int = THUMB_SIZE) -> Decoded:
    """An image file as RGB bytes whose longer side is ``size`` px (``ImageError`` when unreadable)."""
    image = load_image(path)
    if max(image.size) > size:
        image.thumbnail((size, size), reducing_gap=2.0)
    else:
        scale = size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.BICUBIC)
    return image.width, image.height, image.tobytes()


def to_qimage(decoded: Decoded) -> QImage:
    """The RGB bytes of ``decode_thumbnail`` as a QImage that owns its pixels."""
    width, height, data = decoded
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class _DecodeSignals(QObject):
    finished = Signal(str, object, str)  # path, Decoded | None, error ("" when decoded)


class _DecodeJob(QRunnable):
    def __init__(self, path: str, size: int, decode: DecodeFn, signals: _DecodeSignals) -> None:
        super().__init__()
        self._path, self._size, self._decode, self._signals = path, size, decode, signals

    def run(self) -> None:  # on a pool thread
        try:
            result, error = self._decode(self._path, self._size), ""
        except Exception as exc:  # noqa: BLE001 - any failure makes an "unreadable" tile, never a crash
            result, error = None, _short_reason(str(exc), self._path)
        try:
            self._signals.finished.emit(self._path, result, error)
        except RuntimeError:  # the loader was deleted meanwhile
            pass


def _short_reason(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message or "unreadable"


class ThumbnailLoader(QObject):
    """Decodes thumbnails on request in a private thread pool and keeps the most recent ones."""

    loaded = Signal(str)  # path: its thumbnail, or the reason it can't be read, is now known

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        size: int = THUMB_SIZE,
        decode: DecodeFn = decode_thumbnail,
        cache_items: int = CACHE_ITEMS,
    ) -> None:
        super().__init__(parent)
        self.size = size
        self._decode = decode
        self._cache_items = cache_items
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._errors: dict[str, str] = {}
        self._queue: OrderedDict[str, None] = OrderedDict()  # waiting, newest last
        self._running: set[str] = set()
        self.requested: list[str] = []  # every path sent to the decoder, in that order (tests, diagnostics)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(2, min(4, QThreadPool.globalInstance().maxThreadCount() - 1)))
        self._pool.setExpiryTimeout(2000)
        self._signals = _DecodeSignals(self)
        self._signals.finished.connect(self._on_job_finished)

    def pixmap(self, path: str) -> QPixmap | None:
        """The thumbnail if decoded, else None. Never starts a decode."""
        found = self._pixmaps.get(path)
        if found is not None:
            self._pixmaps.move_to_end(path)
        return found

    def error(self, path: str) -> str | None:
        """Why ``path`` can't be shown, once a decode has failed; None otherwise."""
        return self._errors.get(path)

    def request(self, path: str) -> None:
        """Decode ``path`` soon (newest requests first) unless it is decoded or known unreadable."""
        if path in self._pixmaps or path in self._errors or path in self._running:
            return
        self._queue[path] = None
        self._queue.move_to_end(path)
        while len(self._queue) > MAX_QUEUED:
            self._queue.popitem(last=False)
        self._dispatch()

    def pending(self) -> int:
        """Decodes queued or running."""
        return len(self._queue) + len(self._running)

    def cancel_pending(self) -> None:
        """Forget queued requests (e.g. the grid now shows other images); running decodes finish."""
        self._queue.clear()

    def shutdown(self) -> None:
        """Drop queued decodes and wait for the running ones (their threads then exit)."""
        self._queue.clear()
        self._pool.clear()
        self._pool.waitForDone()

    def _dispatch(self) -> None:
        while self._queue and len(self._running) < self._pool.maxThreadCount():
            path, _ = self._queue.popitem(last=True)
            self._running.add(path)
            self.requested.append(path)
            self._pool.start(_DecodeJob(path, self.size, self._decode, self._signals))

    def _on_job_finished(self, path: str, result: Decoded | None, error: str) -> None:
        self._running.discard(path)
        if result is None:
            self._errors[path] = error
        else:
            self._pixmaps[path] = QPixmap.fromImage(to_qimage(result))
            while len(self._pixmaps) > self._cache_items:
                self._pixmaps.popitem(last=False)
        self.loaded.emit(path)
        self._dispatch()
