"""The Explore screen's image lists (likely label mistakes, near-duplicates, outliers, hardest
training images) and the bar that marks the chosen images (leave out, relabel, undo).

Every list is an ``ImageTable``: a thumbnail, "Your change" (what the corrections file says about
the image), then the list's own columns. Thumbnails are decoded only for rows being painted, as in
the Data screen's grid, so a list of 100,000 rows scrolls freely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.plural import plural
from clipstudio.gui.thumbnails import ThumbnailLoader
from clipstudio.gui.widgets.image_viewer import ImageInfo, ImageViewer

LIST_THUMB_SIZE = 48
IMAGE_COLUMN_WIDTH = LIST_THUMB_SIZE + 140
CHANGE_HEADER = "Your change"
CHANGE_COLUMN = 1
CHANGE_COLUMN_WIDTH = 190
ALERT_BACKGROUND = QColor("#fde0dc")  # a near-duplicate group across splits (possible leakage)
ALERT_TEXT = QColor("#b71c1c")
BAND_BACKGROUND = QColor("#f1f3f6")  # every other near-duplicate group, so groups read apart
SIZE_COLUMNS_FROM_ROWS = 200  # rows measured to fit the columns to their text (all rows would be slow)


@dataclass(frozen=True)
class ImageRow:
    """One image in a list: its map row, its file, the list's column texts, and how to draw it."""

    row: int  # position in the map's points (the analysis's embedding rows)
    path: str
    cells: tuple[str, ...]
    label: str = ""  # the image's class, for the large viewer
    split: str = ""
    alert: bool = False  # drawn red (a near-duplicate group across splits)
    banded: bool = False  # drawn on a grey band (alternate near-duplicate groups)


class ImageRowsModel(QAbstractTableModel):
    """Rows of images: thumbnail + name, the user's change to the image, then the list's columns."""

    def __init__(self, headers: list[str], loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.headers = ["Image", CHANGE_HEADER, *headers]
        self.loader = loader
        self.rows: list[ImageRow] = []
        self._change_of: Callable[[str], str] = lambda path: ""
        self._at_path: dict[str, list[int]] = {}
        loader.loaded.connect(self._on_loader_loaded)

    def set_rows(self, rows: list[ImageRow]) -> None:
        self.beginResetModel()
        self.loader.cancel_pending()
        self.rows = list(rows)
        self._at_path = {}
        for i, r in enumerate(self.rows):
            self._at_path.setdefault(r.path, []).append(i)
        self.endResetModel()

    def set_change_of(self, change_of: Callable[[str], str]) -> None:
        """``change_of(path)``: the "Your change" text of an image (e.g. "left out")."""
        self._change_of = change_of
        if self.rows:
            self.dataChanged.emit(self.index(0, CHANGE_COLUMN), self.index(len(self.rows) - 1, CHANGE_COLUMN))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return Path(r.path).name
            if col == CHANGE_COLUMN:
                return self._change_of(r.path)
            return r.cells[col - 2]
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return self.loader.pixmap(r.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            error = self.loader.error(r.path)
            return r.path + (f"\nUnreadable: {error}" if error else "")
        if role == Qt.ItemDataRole.ForegroundRole and r.alert:
            return ALERT_TEXT
        if role == Qt.ItemDataRole.BackgroundRole:
            if r.alert:
                return ALERT_BACKGROUND
            if r.banded:
                return BAND_BACKGROUND
        return None

    def _on_loader_loaded(self, path: str) -> None:
        for i in self._at_path.get(path, []):
            index = self.index(i, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class _PaintRequestsDelegate(QStyledItemDelegate):
    """Asks for a row's thumbnail when its first cell is painted (only visible rows are decoded)."""

    def __init__(self, model: ImageRowsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        if index.column() == 0:
            self._model.loader.request(self._model.rows[index.row()].path)
        super().paint(painter, option, index)


class ImageTable(QWidget):
    """A titled list of images; selecting rows emits their map rows, double-click opens an image large."""

    selection_changed = Signal(list)  # map rows of the selected images

    def __init__(self, headers: list[str], loader: ThumbnailLoader, *, intro: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ImageRowsModel(headers, loader, self)
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        self.intro.setTextFormat(Qt.TextFormat.RichText)
        self.count_label = QLabel()
        self.count_label.setObjectName("hint")
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(_PaintRequestsDelegate(self.model, self.view))
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setIconSize(QSize(LIST_THUMB_SIZE, LIST_THUMB_SIZE))
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        rows = self.view.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(LIST_THUMB_SIZE + 6)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setResizeContentsPrecision(SIZE_COLUMNS_FROM_ROWS)
        self.view.selectionModel().selectionChanged.connect(self._on_view_selection_changed)
        self.view.doubleClicked.connect(self._on_view_double_clicked)
        self.viewer: ImageViewer | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.intro)
        layout.addWidget(self.count_label)
        layout.addWidget(self.view, 1)

    def set_rows(self, rows: list[ImageRow], count_text: str = "") -> None:
        self.model.set_rows(rows)
        self.count_label.setText(count_text)
        self.view.resizeColumnsToContents()
        # Thumbnails arrive after the columns are measured: leave room for one beside the file name.
        self.view.horizontalHeader().resizeSection(0, IMAGE_COLUMN_WIDTH)
        self.view.horizontalHeader().resizeSection(CHANGE_COLUMN, CHANGE_COLUMN_WIDTH)  # filled in later
        self.selection_changed.emit([])  # a model reset drops the selection without saying so

    def selected(self) -> list[ImageRow]:
        picked = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.model.rows[i] for i in picked]

    def _on_view_selection_changed(self, *_args) -> None:
        self.selection_changed.emit([r.row for r in self.selected()])

    def _on_view_double_clicked(self, index: QModelIndex) -> None:
        r = self.model.rows[index.row()]
        if self.viewer is None:
            self.viewer = ImageViewer(self)
        headers = self.model.headers[2:]
        details = [f"{h}: {c}" for h, c in zip(headers, r.cells, strict=True) if c]
        self.viewer.show_image(ImageInfo(path=r.path, label=r.label, split=r.split, details=details,
                                         error=self.model.loader.error(r.path) or ""))


class MarkBar(QWidget):
    """Leave the chosen images out, give them another class, or undo your change to them."""

    exclude_requested = Signal()
    relabel_requested = Signal(str)
    undo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chosen_label = QLabel("No images chosen")
        self.exclude_button = QPushButton("Leave out")
        self.exclude_button.setToolTip("Leave the chosen images out of the dataset whenever it is opened. "
                                       "The files are not touched; undo here or on the Data screen.")
        self.exclude_button.clicked.connect(self.exclude_requested)
        self.class_combo = QComboBox()
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_combo.setMinimumContentsLength(16)
        self.relabel_button = QPushButton("Relabel as")
        self.relabel_button.setToolTip("Give the chosen images this class whenever the dataset is opened. "
                                       "The files are not touched.")
        self.relabel_button.clicked.connect(self._on_relabel_button_clicked)
        self.undo_button = QPushButton("Undo my change")
        self.undo_button.clicked.connect(self.undo_requested)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.chosen_label)
        row.addStretch(1)
        row.addWidget(self.exclude_button)
        row.addSpacing(8)
        row.addWidget(self.relabel_button)
        row.addWidget(self.class_combo)
        row.addSpacing(8)
        row.addWidget(self.undo_button)
        self.set_chosen(0, has_changes=False)

    def set_classes(self, names: list[str]) -> None:
        self.class_combo.clear()
        self.class_combo.addItems(names)

    def set_chosen(self, n: int, *, has_changes: bool) -> None:
        self.chosen_label.setText(f"{plural(n, 'image')} chosen" if n else "No images chosen")
        self.exclude_button.setEnabled(n > 0)
        can_relabel = n > 0 and self.class_combo.count() > 0
        self.relabel_button.setEnabled(can_relabel)
        self.class_combo.setEnabled(self.class_combo.count() > 0)
        self.undo_button.setEnabled(has_changes)

    def _on_relabel_button_clicked(self) -> None:
        if self.class_combo.currentText():
            self.relabel_requested.emit(self.class_combo.currentText())
