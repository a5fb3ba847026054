"""A lazily decoded thumbnail grid that stays smooth at 10k+ images (the Data screen's Images tab).

A decode is requested only when the delegate paints a tile (uniform item sizes, batched layout),
so only visible tiles are ever decoded; ``gui.thumbnails.ThumbnailLoader`` does the decoding.
Double-clicking a tile opens the image large in an ``ImageViewer``; with ``show_on_map``, right-click
offers "Show on the map" (``widgets.show_on_map``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.plural import plural
from clipstudio.gui.thumbnails import THUMB_SIZE, DecodeFn, ThumbnailLoader, decode_thumbnail
from clipstudio.gui.widgets.image_viewer import ImageInfo, ImageViewer
from clipstudio.gui.widgets.show_on_map import ShowOnMap

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


class ThumbnailModel(QAbstractListModel):
    """Items with a decoded-on-demand picture (DecorationRole), tooltip, class and split roles."""

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self._items: list[ThumbnailItem] = []
        self._row_of: dict[str, list[int]] = {}
        self._placeholder = _tile(loader.size, QColor(200, 204, 210))
        self._unreadable = _tile(loader.size, QColor(236, 200, 200), "unreadable", QColor(150, 30, 30))
        loader.loaded.connect(self._on_loader_loaded)

    # --- data ------------------------------------------------------------------------------------
    def set_items(self, items: list[ThumbnailItem]) -> None:
        self.beginResetModel()
        self.loader.cancel_pending()
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
        error = self.loader.error(item.path)
        if error is not None:
            lines.append(f"Unreadable: {error}")
        return "\n".join(lines)

    def pixmap(self, path: str) -> QPixmap:
        """The thumbnail, the unreadable tile, or the placeholder. Never starts a decode."""
        if self.loader.error(path) is not None:
            return self._unreadable
        found = self.loader.pixmap(path)
        return found if found is not None else self._placeholder

    def _on_loader_loaded(self, path: str) -> None:
        for row in self._row_of.get(path, []):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole])


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

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loader = loader

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        path = index.data(PathRole)
        if path:
            self._loader.request(path)
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

    def __init__(
        self, parent: QWidget | None = None, *, decode: DecodeFn = decode_thumbnail, show_on_map: bool = False
    ) -> None:
        super().__init__(parent)
        self.loader = ThumbnailLoader(self, decode=decode)
        self.model = ThumbnailModel(self.loader, self)
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
        self.view.setItemDelegate(_PaintRequestsDelegate(self.loader, self.view))
        self.view.doubleClicked.connect(self._on_view_double_clicked)
        self.viewer: ImageViewer | None = None  # built on the first double-click
        self.show_on_map = ShowOnMap(self.view, lambda index: index.data(PathRole)) if show_on_map else None

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

    def open_item(self, item: ThumbnailItem) -> ImageViewer:
        """Show ``item``'s image large, with its class, split and caption."""
        if self.viewer is None:
            self.viewer = ImageViewer(self)
        info = ImageInfo(
            path=item.path,
            label=item.class_name,
            split=item.split,
            caption=item.caption,
            error=self.loader.error(item.path) or "",
        )
        self.viewer.show_image(info)
        return self.viewer

    def _on_view_double_clicked(self, index) -> None:
        self.open_item(self.model.item(self.proxy.mapToSource(index).row()))

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
        self.count_label.setText(plural(shown, "image") if shown == total else f"{shown:,} of {total:,} images")

    def shutdown(self) -> None:
        self.loader.shutdown()
