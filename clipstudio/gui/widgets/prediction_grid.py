"""An image grid like a photo browser: a QListView in icon mode whose thumbnails decode lazily.

Only the tiles Qt actually paints ask for their thumbnail (``gui.thumbnails.ThumbnailLoader``
decodes it, as for the Data screen's grid). ``TileGrid`` shows any list of tiles
(e.g. search hits); ``PredictionGrid`` shows zero-shot predictions with a green or red border and
filters them (misclassified only, by class, by confusion-matrix cell). Double-clicking a tile opens
its image large in the grid's ``ImageViewer``; with ``show_on_map``, right-click offers "Show on the map".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QSize, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QWidget

from clipstudio.gui.thumbnails import THUMB_SIZE, ThumbnailLoader
from clipstudio.gui.widgets.image_viewer import ImageInfo, ImageViewer
from clipstudio.gui.widgets.show_on_map import ShowOnMap

_TEXT_LINES = 3
OK_COLOUR = QColor("#2e9d4f")
WRONG_COLOUR = QColor("#d43c3c")

TileRole = Qt.ItemDataRole.UserRole + 1


@dataclass
class Tile:
    """One image in the grid: its lines of text, tooltip and verdict (None: no border colour)."""

    path: str
    lines: list[str] = field(default_factory=list)
    tooltip: str = ""
    correct: bool | None = None
    true: str | None = None
    pred: str | None = None
    topk: list[tuple[str, float]] = field(default_factory=list)  # (class, probability), best first
    details: list[str] = field(default_factory=list)  # further "Name: value" lines for the viewer

    def image_info(self) -> ImageInfo:
        """What the image viewer shows for this tile."""
        return ImageInfo(
            path=self.path,
            label=self.true or "",
            prediction=self.pred or "",
            correct=self.correct,
            topk=list(self.topk),
            details=list(self.details),
        )


class TileModel(QAbstractListModel):
    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loader = loader
        self._tiles: list[Tile] = []
        self._rows_of: dict[str, list[int]] = {}
        loader.loaded.connect(self._on_loader_loaded)

    def set_tiles(self, tiles: list[Tile]) -> None:
        self.beginResetModel()
        self._tiles = list(tiles)
        self._rows_of = {}
        for row, tile in enumerate(self._tiles):
            self._rows_of.setdefault(tile.path, []).append(row)
        self.endResetModel()

    def tiles(self) -> list[Tile]:
        return list(self._tiles)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._tiles)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        tile = self._tiles[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return "\n".join(tile.lines)
        if role == Qt.ItemDataRole.DecorationRole:  # None while decoding; a null pixmap when unreadable
            if self._loader.error(tile.path) is not None:
                return QPixmap()
            return self._loader.pixmap(tile.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tile.tooltip or tile.path
        if role == TileRole:
            return tile
        return None

    def _on_loader_loaded(self, path: str) -> None:
        for row in self._rows_of.get(path, []):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class PredictionFilter(QSortFilterProxyModel):
    """Misclassified only; one true class; one confusion-matrix cell (true, predicted)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.misclassified_only = False
        self.class_name: str | None = None
        self.cell: tuple[str, str] | None = None

    def update(self) -> None:
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:
        tile: Tile = self.sourceModel().index(row, 0, parent).data(TileRole)
        if self.misclassified_only and tile.correct is not False:
            return False
        if self.class_name is not None and tile.true != self.class_name:
            return False
        return self.cell is None or (tile.true, tile.pred) == self.cell


class TileDelegate(QStyledItemDelegate):
    """A thumbnail framed in green (right) or red (wrong) with a check/cross badge, text below."""

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loader = loader
        self.tile_size = QSize(THUMB_SIZE + 40, THUMB_SIZE + 14 + 16 * _TEXT_LINES)

    def sizeHint(self, option, index) -> QSize:
        return self.tile_size

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        tile: Tile = index.data(TileRole)
        self._loader.request(tile.path)  # asked here, not in data(): only tiles on screen get decoded
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(3, 3, -3, -3)
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, palette.highlight().color().lighter(160))
        thumb = QRect(rect.center().x() - THUMB_SIZE // 2, rect.top() + 4, THUMB_SIZE, THUMB_SIZE)
        image = index.data(Qt.ItemDataRole.DecorationRole)
        painter.fillRect(thumb, QColor("#20242a"))
        if image is None:
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(thumb, Qt.AlignmentFlag.AlignCenter, "…")
        elif image.isNull():
            painter.setPen(QColor("#e8e8e8"))
            painter.drawText(thumb, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, "can't\nread")
        else:
            scaled = image.size().scaled(thumb.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(thumb.center())
            painter.drawPixmap(target, image)
        if tile.correct is not None:
            colour = OK_COLOUR if tile.correct else WRONG_COLOUR
            painter.setPen(QPen(colour, 4))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(thumb.adjusted(-1, -1, 1, 1))
            badge = QRect(thumb.right() - 18, thumb.top() + 2, 16, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawEllipse(badge)
            painter.setPen(QColor("white"))
            bold = QFont(option.font)
            bold.setBold(True)
            painter.setFont(bold)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "✓" if tile.correct else "✗")
        painter.setFont(option.font)
        painter.setPen(palette.text().color())
        metrics = option.fontMetrics
        y = thumb.bottom() + 6
        for line in captions(tile, metrics, rect.width() - 4):
            text_rect = QRect(rect.left() + 2, y, rect.width() - 4, metrics.height())
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, line)
            y += metrics.height() + 1
        painter.restore()

    def caption_width(self) -> int:
        """The width a tile's text lines get, in pixels."""
        return self.tile_size.width() - 10


def captions(tile: Tile, metrics: QFontMetrics, width: int) -> list[str]:
    """The text lines under ``tile``'s image as painted: a line too long for ``width`` is elided in the
    middle ("pred: immat…ulocyte" keeps the label and both ends of a long class name)."""
    return [metrics.elidedText(line, Qt.TextElideMode.ElideMiddle, width) for line in tile.lines[:_TEXT_LINES]]


class TileGrid(QListView):
    """Tiles of images in a wrapping, scrollable grid; thumbnails appear as they decode."""

    def __init__(self, parent: QWidget | None = None, *, show_on_map: bool = False) -> None:
        super().__init__(parent)
        self.loader = ThumbnailLoader(self)
        self.tile_model = TileModel(self.loader, self)
        self.filter = PredictionFilter(self)
        self.filter.setSourceModel(self.tile_model)
        self.setModel(self.filter)
        self.delegate = TileDelegate(self.loader, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # lets Qt lay out thousands of tiles without asking each one
        self.setGridSize(self.delegate.tile_size + QSize(6, 6))
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self._empty_text = ""
        self.viewer: ImageViewer | None = None  # built on the first double-click
        self.doubleClicked.connect(self._on_double_clicked)
        self.show_on_map = ShowOnMap(self, _tile_path) if show_on_map else None

    def set_empty_text(self, text: str) -> None:
        """What the empty grid says (e.g. "No images match these filters")."""
        self._empty_text = text
        self.viewport().update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.model().rowCount() == 0 and self._empty_text:
            painter = QPainter(self.viewport())
            painter.setPen(QColor("#6b7785"))
            painter.drawText(
                self.viewport().rect().adjusted(20, 20, -20, -20),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._empty_text,
            )

    def set_tiles(self, tiles: list[Tile]) -> None:
        self.loader.cancel_pending()  # thumbnails of the old list nobody will see
        self.tile_model.set_tiles(tiles)

    def tiles(self) -> list[Tile]:
        return self.tile_model.tiles()

    def visible_tiles(self) -> list[Tile]:
        """The tiles that pass the current filters, in grid order."""
        return [self.filter.index(r, 0).data(TileRole) for r in range(self.filter.rowCount())]

    def open_tile(self, tile: Tile) -> ImageViewer:
        """Show ``tile``'s image large, with its label, prediction and top-5."""
        if self.viewer is None:
            self.viewer = ImageViewer(self)
        self.viewer.show_image(tile.image_info())
        return self.viewer

    def _on_double_clicked(self, index: QModelIndex) -> None:
        tile = index.data(TileRole)
        if tile is not None:
            self.open_tile(tile)

    def shutdown(self) -> None:
        self.loader.shutdown()


def _tile_path(index: QModelIndex) -> str | None:
    tile = index.data(TileRole)
    return tile.path if tile is not None else None


def prediction_tile(prediction: dict) -> Tile:
    """A tile for one zero-shot prediction (``ZeroShotResult.predictions`` entry)."""
    topk = prediction.get("topk") or []
    correct = prediction["true"] == prediction["pred"]
    # The predicted class's own probability: at a binary operating point it need not be the top one.
    top_prob = next((prob for name, prob in topk if name == prediction["pred"]), None)
    probs = "\n".join(f"  {name}: {prob:.1%}" for name, prob in topk)
    tooltip = (
        f"{prediction['path']}\n\nTrue: {prediction['true']}\nPredicted: {prediction['pred']}"
        f" ({'correct' if correct else 'wrong'})\n\nTop {len(topk)}:\n{probs}"
    )
    # The class names get a line each and the numbers the third, so a short name is never cut; a
    # long one is elided in the middle by the delegate (the tooltip has it in full).
    numbers = [f"{top_prob:.0%}"] if top_prob is not None else []
    plausible = prediction.get("set")
    if plausible is not None:  # the conformal prediction set: every class it can't rule out
        tooltip += f"\n\nPrediction set ({len(plausible)}): {', '.join(plausible) or 'empty'}"
        numbers.append(f"set of {len(plausible)}")
    lines = [f"true: {prediction['true']}", f"pred: {prediction['pred']}"]
    if numbers:
        lines.append(" · ".join(numbers))
    return Tile(
        path=str(prediction["path"]),
        lines=lines,
        tooltip=tooltip,
        correct=correct,
        true=prediction["true"],
        pred=prediction["pred"],
        topk=[(str(name), float(prob)) for name, prob in topk],
        details=[f"Prediction set: {', '.join(plausible) or 'empty'}"] if plausible is not None else [],
    )


class PredictionGrid(TileGrid):
    """Zero-shot predictions, framed green (right) or red (wrong), with the grid's filters."""

    def set_predictions(self, predictions: list[dict]) -> None:
        self.set_tiles([prediction_tile(p) for p in predictions])

    def set_misclassified_only(self, on: bool) -> None:
        self.filter.misclassified_only = bool(on)
        self.filter.update()

    def set_class_filter(self, class_name: str | None) -> None:
        self.filter.class_name = class_name or None
        self.filter.update()

    def set_cell_filter(self, true: str | None, pred: str | None) -> None:
        self.filter.cell = (true, pred) if true is not None and pred is not None else None
        self.filter.update()
