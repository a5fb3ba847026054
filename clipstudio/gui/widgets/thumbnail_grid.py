"""A lazily decoded thumbnail grid that stays smooth at 10k+ images.

A decode is requested only when the delegate paints a tile (uniform item sizes, batched layout),
so only visible tiles are ever decoded. Decoding (``load_image`` + PIL
thumbnail) runs on a small private thread pool; the GUI thread turns the bytes into a QImage and
keeps the pixmaps in a bounded LRU. Newest requests are served first, so scrolling fast does not
leave the screen waiting behind tiles that have already scrolled away.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QRunnable,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

THUMB_SIZE = 96
CACHE_ITEMS = 1500  # ~55 MB of 96 px RGB pixmaps
MAX_QUEUED = 300  # older requests than this were scrolled past; they are asked again if shown again
ALL = "All"

ClassRole = Qt.ItemDataRole.UserRole + 1
SplitRole = Qt.ItemDataRole.UserRole + 2
PathRole = Qt.ItemDataRole.UserRole + 3


@dataclass(frozen=True)
class ThumbnailItem:
    path: str
    class_name: str = ""
    split: str = ""
    caption: str = ""


# (width, height, RGB bytes) or an error sentence.
Decoded = tuple[int, int, bytes]
DecodeFn = Callable[[str, int], Decoded]


def decode_thumbnail(path: str, size: int = THUMB_SIZE) -> Decoded:
    """Decode an image file (any format the engine reads, DICOM included) to a ``size`` px RGB thumbnail."""
    from clipstudio.engine.data.images import load_image

    image = load_image(path)
    if max(image.size) > size:
        image.thumbnail((size, size), reducing_gap=2.0)
    else:  # small images (e.g. 28 px MedMNIST) are scaled up so the tile is not a dot
        scale = size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.BICUBIC)
    return image.width, image.height, image.tobytes()


class _DecodeSignals(QObject):
    finished = Signal(str, object, str)  # path, Decoded | None, error ("" when decoded)


class _DecodeJob(QRunnable):
    def __init__(self, path: str, size: int, decode: DecodeFn, signals: _DecodeSignals) -> None:
        super().__init__()
        self._path, self._size, self._decode, self._signals = path, size, decode, signals

    def run(self) -> None:  # on a pool thread
        try:
            result, error = self._decode(self._path, self._size), ""
        except Exception as exc:  # any failure becomes an "unreadable" tile, never a crash
            result, error = None, _short_reason(str(exc), self._path)
        try:
            self._signals.finished.emit(self._path, result, error)
        except RuntimeError:  # the grid was deleted meanwhile
            pass


def _short_reason(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message or "unreadable"


class ThumbnailModel(QAbstractListModel):
    """Items with a decoded-on-demand picture (DecorationRole), tooltip, class and split roles."""

    decoded_count_changed = Signal(int)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        decode: DecodeFn = decode_thumbnail,
        thumb_size: int = THUMB_SIZE,
        cache_items: int = CACHE_ITEMS,
    ) -> None:
        super().__init__(parent)
        self._items: list[ThumbnailItem] = []
        self._row_of: dict[str, list[int]] = {}
        self._decode = decode
        self._size = thumb_size
        self._cache_items = cache_items
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._errors: dict[str, str] = {}
        self._queue: OrderedDict[str, None] = OrderedDict()  # waiting, newest last
        self._running: set[str] = set()
        self.requested: set[str] = set()  # every path ever sent to the decoder (tests, diagnostics)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(2, min(4, QThreadPool.globalInstance().maxThreadCount() - 1)))
        self._pool.setExpiryTimeout(2000)
        self._signals = _DecodeSignals(self)
        self._signals.finished.connect(self._on_job_finished)
        self._placeholder = _tile(thumb_size, QColor(200, 204, 210))
        self._unreadable = _tile(thumb_size, QColor(236, 200, 200), "unreadable", QColor(150, 30, 30))

    # --- data ------------------------------------------------------------------------------------
    def set_items(self, items: list[ThumbnailItem]) -> None:
        self.beginResetModel()
        self._queue.clear()
        self._items = list(items)
        self._row_of = {}
        for row, item in enumerate(self._items):
            self._row_of.setdefault(item.path, []).append(row)
        self.endResetModel()

    def item(self, row: int) -> ThumbnailItem:
        return self._items[row]

    def items(self) -> list[ThumbnailItem]:
        return self._items

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(item.path)
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(item.path).name
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item)
        if role == ClassRole:
            return item.class_name
        if role == SplitRole:
            return item.split
        if role == PathRole:
            return item.path
        return None

    def _tooltip(self, item: ThumbnailItem) -> str:
        lines = [item.path]
        if item.class_name:
            lines.append(f"Class: {item.class_name}")
        if item.split:
            lines.append(f"Split: {item.split}")
        if item.caption:
            caption = item.caption if len(item.caption) <= 160 else item.caption[:157] + "…"
            lines.append(f"Caption: {caption}")
        if item.path in self._errors:
            lines.append(f"Unreadable: {self._errors[item.path]}")
        return "\n".join(lines)

    # --- decoding --------------------------------------------------------------------------------
    def pixmap(self, path: str) -> QPixmap:
        """The cached thumbnail, the unreadable tile, or the placeholder. Never starts a decode."""
        if path in self._errors:
            return self._unreadable
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        return self._placeholder

    def request(self, path: str) -> None:
        """Decode ``path`` soon (newest requests first) unless it is cached or known unreadable."""
        if path not in self._cache and path not in self._errors:
            self._request(path)

    def is_unreadable(self, path: str) -> bool:
        return path in self._errors

    def has_thumbnail(self, path: str) -> bool:
        return path in self._cache

    def pending(self) -> int:
        return len(self._queue) + len(self._running)

    def _request(self, path: str) -> None:
        if path in self._running:
            return
        self._queue[path] = None
        self._queue.move_to_end(path)
        while len(self._queue) > MAX_QUEUED:
            self._queue.popitem(last=False)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and len(self._running) < self._pool.maxThreadCount():
            path, _ = self._queue.popitem(last=True)
            self._running.add(path)
            self.requested.add(path)
            self._pool.start(_DecodeJob(path, self._size, self._decode, self._signals))

    def _on_job_finished(self, path: str, result: Decoded | None, error: str) -> None:
        self._running.discard(path)
        if result is None:
            self._errors[path] = error
        else:
            width, height, data = result
            image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
            self._cache[path] = QPixmap.fromImage(image)
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
        for row in self._row_of.get(path, []):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole])
        self.decoded_count_changed.emit(len(self._cache) + len(self._errors))
        self._dispatch()

    def shutdown(self) -> None:
        """Drop queued decodes and wait for the running ones (their threads then exit)."""
        self._queue.clear()
        self._pool.clear()
        self._pool.waitForDone()


def _tile(size: int, fill: QColor, text: str = "", ink: QColor | None = None) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawRoundedRect(2, 2, size - 4, size - 4, 6, 6)
    if text:
        font = QFont()
        font.setPointSize(9)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(ink or QColor(0, 0, 0))
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return pixmap


class _PaintRequestsDelegate(QStyledItemDelegate):
    """Asks for a thumbnail when a tile is painted: views also query data to measure, not only to show."""

    def __init__(self, model: ThumbnailModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        path = index.data(PathRole)
        if path:
            self._model.request(path)
        super().paint(painter, option, index)


class ThumbnailFilter(QSortFilterProxyModel):
    """Keeps the rows of one class and/or one split ("" = any)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._class = ""
        self._split = ""

    def set_filter(self, class_name: str = "", split: str = "") -> None:
        self.beginFilterChange()
        self._class, self._split = class_name, split
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        item = self.sourceModel().item(source_row)
        return (not self._class or item.class_name == self._class) and (
            not self._split or item.split == self._split
        )


class ThumbnailGrid(QWidget):
    """Class and split filters over a lazily decoded icon grid."""

    def __init__(self, parent: QWidget | None = None, *, decode: DecodeFn = decode_thumbnail) -> None:
        super().__init__(parent)
        self.model = ThumbnailModel(self, decode=decode)
        self.proxy = ThumbnailFilter(self)
        self.proxy.setSourceModel(self.model)

        self.class_combo = QComboBox()
        self.split_combo = QComboBox()
        for combo in (self.class_combo, self.split_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.currentIndexChanged.connect(self._on_filter_changed)
        self.count_label = QLabel()
        self.count_label.setObjectName("hint")

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(500)
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setGridSize(QSize(THUMB_SIZE + 22, THUMB_SIZE + 26))
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setWordWrap(False)
        self.view.setSpacing(0)
        self.view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.view.setModel(self.proxy)
        self.view.setItemDelegate(_PaintRequestsDelegate(self.model, self.view))

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Class"))
        bar.addWidget(self.class_combo)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Split"))
        bar.addWidget(self.split_combo)
        bar.addStretch(1)
        bar.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self._fill_combos([], [])

    def set_items(
        self,
        items: list[ThumbnailItem],
        class_names: list[str] | None = None,
        split_names: list[str] | None = None,
    ) -> None:
        self.model.set_items(items)
        classes = class_names if class_names is not None else sorted({i.class_name for i in items} - {""})
        splits = split_names if split_names is not None else sorted({i.split for i in items} - {""})
        self._fill_combos(classes, splits)
        self._on_filter_changed()

    def set_filter(self, class_name: str = "", split: str = "") -> None:
        """Show only one class and/or split ("" = all); the combos follow."""
        for combo, value in ((self.class_combo, class_name), (self.split_combo, split)):
            at = combo.findData(value)
            combo.setCurrentIndex(at if at >= 0 else 0)

    def visible_count(self) -> int:
        return self.proxy.rowCount()

    def _fill_combos(self, classes: list[str], splits: list[str]) -> None:
        for combo, names in ((self.class_combo, classes), (self.split_combo, splits)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(ALL, "")
            for name in names:
                combo.addItem(name, name)
            combo.setEnabled(bool(names))
            combo.blockSignals(False)

    def _on_filter_changed(self, *_args) -> None:
        self.proxy.set_filter(self.class_combo.currentData() or "", self.split_combo.currentData() or "")
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count_label.setText(f"{shown:,} images" if shown == total else f"{shown:,} of {total:,} images")

    def shutdown(self) -> None:
        self.model.shutdown()
