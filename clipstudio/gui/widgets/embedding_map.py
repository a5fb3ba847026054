"""The Explore screen's embedding map: every image as a dot, coloured by group, hover and rectangle selection.

Built to stay interactive at 100,000 points. A scatter item per group paints every dot on every
frame (measured: 60-110 ms a frame at 100,000 dots on a 2-core CPU), so the dots are instead drawn
by numpy, on a worker thread, into one RGBA image (``rasterize_dots``) covering the view and a
margin around it, shown as an ``ImageItem``: panning moves the image, and it is drawn again (20-30
ms, off the GUI thread) only when the view is zoomed or leaves the margin, once the movement
pauses. Hovering finds the nearest dot with one vectorised distance over the positions, at most
every ``HOVER_INTERVAL_MS``, never through pyqtgraph's per-point hover machinery. OpenGL is off. Dragging with the left button draws a
selection rectangle; right-drag moves the map, the wheel zooms. ``focus(row)`` centres one image,
zoomed out as far as needed to keep the whole map in view, and draws a target around it (an image
shown from another screen); chosen dots are drawn over their neighbours, each inside a ring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    QPoint,
    QPointF,
    QRectF,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from clipstudio.gui.thumbnails import ThumbnailLoader

HOVER_INTERVAL_MS = 30
HOVER_RADIUS_PX = 8
DOT_SIZE = 5
REDRAW_PAUSE_MS = 60  # the dots are drawn again once zooming or panning pauses this long
MARGIN = 0.3  # the dot image covers the view plus this fraction of it on every side
# Pixel offsets stamped for a dot (a 5 px disc) and for the ring around a chosen dot.
_DOT = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 5]
_RING = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if 9 <= dy * dy + dx * dx <= 16]
MARK_COLOR = "#d62728"
FIT_PADDING = 0.04  # blank space around the map when it is fitted to the view, as a fraction of it
FOCUS_SIZE = 26  # the target drawn around an image shown from another screen ("Show on the map")
PREVIEW_SIZE = 128
PREVIEW_TEXT_WIDTH = 200
EMPTY_TEXT = "Press Analyse to place every image of the dataset here: similar images land close together."
# Distinct colours for classes and splits (Okabe-Ito first: readable for colour-blind users).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#ff9896", "#98df8a", "#c5b0d5")
MUTED = "#c0c4ca"


@dataclass(frozen=True)
class PointGroup:
    """Dots drawn in one colour, with their legend entry."""

    name: str
    color: str
    rows: np.ndarray  # int row positions into the map's points


def category_groups(codes: np.ndarray, names: list[str], *, muted: set[str] | None = None) -> list[PointGroup]:
    """One group per category (``codes`` index ``names``; -1 = none), in name order, palette colours."""
    groups = []
    for i, name in enumerate(names):
        rows = np.flatnonzero(codes == i)
        if rows.size:
            color = MUTED if muted and name in muted else PALETTE[i % len(PALETTE)]
            groups.append(PointGroup(name, color, rows))
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        groups.append(PointGroup("none", MUTED, missing))
    return groups


def value_groups(values: np.ndarray, *, bins: int = 6, fmt: str = "{:.2f}") -> list[PointGroup]:
    """Dots binned by a number (NaN = no value), coloured low (dark) to high (bright) on viridis."""
    finite = np.isfinite(values)
    groups: list[PointGroup] = []
    if finite.any():
        lo, hi = float(np.min(values[finite])), float(np.max(values[finite]))
        edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo, lo])
        index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
        colors = pg.colormap.get("viridis").map(np.linspace(0.0, 1.0, len(edges) - 1), mode="qcolor")
        for b in range(len(edges) - 1):
            rows = np.flatnonzero(finite & (index == b))
            if rows.size:
                label = f"{fmt.format(edges[b])} – {fmt.format(edges[b + 1])}"
                groups.append(PointGroup(label, colors[b].name(), rows))
    missing = np.flatnonzero(~finite)
    if missing.size:
        groups.append(PointGroup("no value", MUTED, missing))
    return groups


def rasterize_dots(
    xy: np.ndarray, groups: list[PointGroup], marked: np.ndarray, rect: QRectF, width: int, height: int
) -> np.ndarray:
    """An RGBA image of ``rect`` at ``width`` x ``height`` px (rows = y upwards) with every group's dots,
    later groups on top, and each ``marked`` row's dot on top of all, in a ring.

    Each dot is one pixel write; the dots' shape comes from shifting the whole image a dozen times
    (a dilation), which costs the same however many dots there are.
    """
    index = np.zeros((height, width), dtype=np.uint16)  # 0: no dot; k: a dot of group k - 1
    group_of = np.zeros(len(xy), dtype=np.uint16)
    for k, group in enumerate(groups, start=1):
        group_of[group.rows] = k
        px, py, inside = _pixels(xy[group.rows], rect, width, height)
        index[py[inside], px[inside]] = k
    palette = np.zeros(len(groups) + 1, dtype=np.uint32)
    palette[1:] = [_rgba(g.color) for g in groups]
    image = palette[_dilate(index, _DOT)]
    if marked.size:
        px, py, inside = _pixels(xy[marked], rect, width, height)
        # The ringed dots drawn again over their neighbours: the ring holds the chosen image's own colour.
        chosen = np.zeros((height, width), dtype=np.uint16)
        chosen[py[inside], px[inside]] = group_of[marked[inside]]
        dots = _dilate(chosen, _DOT)
        image = np.where(dots > 0, palette[dots], image)
        centres = np.zeros((height, width), dtype=np.uint8)
        centres[py[inside], px[inside]] = 1
        image[_dilate(centres, _RING) > 0] = _rgba(MARK_COLOR)
    return image.view(np.uint8).reshape(height, width, 4)


def _pixels(xy: np.ndarray, rect: QRectF, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column and row of each point in ``rect`` drawn at ``width`` x ``height`` px, and which are inside it."""
    px = np.floor((xy[:, 0] - rect.left()) * (width / max(rect.width(), 1e-12))).astype(np.int64)
    py = np.floor((xy[:, 1] - rect.top()) * (height / max(rect.height(), 1e-12))).astype(np.int64)
    return px, py, (px >= 0) & (px < width) & (py >= 0) & (py < height)


def _dilate(image: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Each pixel takes the largest value found at the given offsets from it (the centre only if listed)."""
    height, width = image.shape
    out = np.zeros_like(image)
    for dy, dx in offsets:
        dst = out[max(dy, 0): height + min(dy, 0), max(dx, 0): width + min(dx, 0)]
        src = image[max(-dy, 0): height + min(-dy, 0), max(-dx, 0): width + min(-dx, 0)]
        np.maximum(dst, src, out=dst)
    return out


def _rgba(color: str) -> np.uint32:
    """``color`` as the uint32 whose bytes are R, G, B, A (opaque) in memory."""
    q = QColor(color)
    return np.array([q.red(), q.green(), q.blue(), 255], dtype=np.uint8).view(np.uint32)[0]


class _RasterSignals(QObject):
    finished = Signal(int, object, QRectF)  # generation, RGBA image, the data area it covers


class _RasterJob(QRunnable):
    def __init__(self, generation: int, args: tuple, signals: _RasterSignals) -> None:
        super().__init__()
        self._generation, self._args, self._signals = generation, args, signals

    def run(self) -> None:  # on the pool's thread
        image = rasterize_dots(*self._args)
        try:
            self._signals.finished.emit(self._generation, image, self._args[3])
        except RuntimeError:  # the map was deleted meanwhile
            pass


class _SelectingViewBox(pg.ViewBox):
    """Left-drag draws a selection rectangle (in data coordinates); right-drag moves the view."""

    def __init__(self, on_select: Callable[[QRectF], None]) -> None:
        super().__init__(enableMenu=False)
        self._on_select = on_select

    def mouseDragEvent(self, ev, axis=None) -> None:
        if axis is None and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isFinish():
                self.rbScaleBox.hide()
                rect = self.childGroup.mapRectFromParent(QRectF(ev.buttonDownPos(), ev.pos())).normalized()
                self._on_select(rect)
            else:
                self.updateScaleBox(ev.buttonDownPos(), ev.pos())
            return
        if axis is None and ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            tr = fn.invertQTransform(self.childGroup.transform())
            shift = tr.map(ev.lastPos() - ev.pos()) - tr.map(QPointF(0, 0))
            self.translateBy(x=shift.x(), y=shift.y())
            return
        super().mouseDragEvent(ev, axis)


class _Preview(QFrame):
    """The floating thumbnail and file name shown beside the hovered dot."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("mapPreview")
        self.setStyleSheet("#mapPreview { background: white; border: 1px solid #9aa6b2; border-radius: 4px; }")
        self.image = QLabel()
        self.image.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setFixedWidth(PREVIEW_TEXT_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.image, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.text)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()


class EmbeddingMap(QWidget):
    """A 2-D scatter of the images; emits the dot under the mouse and the dots in a dragged rectangle."""

    hovered = Signal(int)  # row under the mouse, -1 when none
    rect_selected = Signal(object)  # np.ndarray of rows inside the dragged rectangle

    def __init__(self, loader: ThumbnailLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader or ThumbnailLoader(self, size=PREVIEW_SIZE)
        self.loader.loaded.connect(self._on_loader_loaded)
        self.xy = np.zeros((0, 2), dtype=np.float32)
        self.paths: list[str] = []
        self._describe: Callable[[int], str] = lambda row: ""
        self.groups: list[PointGroup] = []
        self._legend_samples: list[pg.ScatterPlotItem] = []
        self._drawn_rect: QRectF | None = None  # the data area the dot image covers
        self._drawn_pixel: tuple[float, float] = (0.0, 0.0)  # its data units per pixel
        self._generation = 0  # of the latest drawing asked for; older ones are dropped when they arrive
        # The dots are drawn off the GUI thread (numpy releases the GIL): a redraw never stalls the window.
        self._raster_pool = QThreadPool(self)
        self._raster_pool.setMaxThreadCount(1)
        self._raster_signals = _RasterSignals(self)
        self._raster_signals.finished.connect(self._on_raster_finished)
        self.hovered_row = -1
        self.marked_rows = np.zeros(0, dtype=np.int64)
        self.focused_row = -1
        self._mouse_scene: QPointF | None = None

        self.view_box = _SelectingViewBox(self._on_view_box_selected)
        self.plot = pg.PlotWidget(viewBox=self.view_box, useOpenGL=False)
        self.plot.setBackground("w")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(True)
        self.plot.hideButtons()  # auto-range would fit the dot image's margin, not the dots
        self.view_box.disableAutoRange()
        self.legend = self.plot.addLegend(offset=(8, 8), labelTextSize="9pt")
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 220))
        self.dots = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.dots)
        self.hover_item = pg.ScatterPlotItem(size=DOT_SIZE + 8, pxMode=True, brush=None,
                                             pen=pg.mkPen("#111111", width=2), symbol="o")
        self.hover_item.setZValue(10)
        self.plot.addItem(self.hover_item)
        # A bold target that finds one dot among thousands (a red ring in a white halo).
        self.focus_item = pg.ScatterPlotItem(size=FOCUS_SIZE, pxMode=True, brush=None, symbol="o",
                                             pen=pg.mkPen(MARK_COLOR, width=3))
        self.focus_halo = pg.ScatterPlotItem(size=FOCUS_SIZE + 6, pxMode=True, brush=None, symbol="o",
                                             pen=pg.mkPen("w", width=3))
        for z, item in ((11, self.focus_halo), (12, self.focus_item)):
            item.setZValue(z)
            self.plot.addItem(item)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_PAUSE_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self.view_box.sigRangeChanged.connect(self._on_view_box_range_changed)
        self.preview = _Preview(self.plot)
        self.empty_label = QLabel(EMPTY_TEXT, self.plot)
        self.empty_label.setObjectName("hint")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._update_hover)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

        self.hint = QLabel("Drag to select images · wheel to zoom · right-drag to move")
        self.hint.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.hint)

    # --- data ------------------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray, paths: list[str], describe: Callable[[int], str]) -> None:
        """Show the dots at ``xy`` (rows = images at ``paths``); ``describe(row)`` is the hover text."""
        self.xy = np.asarray(xy, dtype=np.float32)
        self.paths = list(paths)
        self._describe = describe
        self.set_marked(np.zeros(0, dtype=np.int64))
        self._set_hovered(-1)
        self.set_groups([PointGroup("images", PALETTE[0], np.arange(len(self.xy)))])
        self.empty_label.setVisible(not len(self.xy))
        self.fit()

    def set_groups(self, groups: list[PointGroup]) -> None:
        """Colour the dots by group (drawn in order, later groups on top), with a legend."""
        self.legend.clear()
        self.groups = list(groups)
        # Legend samples only: the dots themselves are the image.
        self._legend_samples = [
            pg.ScatterPlotItem(size=8, pen=None, brush=pg.mkBrush(g.color), symbol="o") for g in self.groups
        ]
        for group, sample in zip(self.groups, self._legend_samples, strict=True):
            self.legend.addItem(sample, f"{group.name} ({group.rows.size:,})")
        self.redraw()

    def set_marked(self, rows: np.ndarray) -> None:
        """Ring these dots (the images chosen in a list or selected on the map)."""
        self.marked_rows = np.asarray(rows, dtype=np.int64)
        if self.marked_rows.tolist() != [self.focused_row]:
            self._set_focused(-1)
        self.redraw()

    def focus(self, row: int) -> None:
        """Ring ``row``'s dot alone, with a target around it, and centre the view on it, zoomed out just
        enough to keep the whole map in view (a dot near the map's edge then has the map to one side)."""
        self.set_marked(np.array([row], dtype=np.int64))
        self._set_focused(row)
        x, y = float(self.xy[row, 0]), float(self.xy[row, 1])
        lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
        half_w = (1 + FIT_PADDING) * max(x - float(lo[0]), float(hi[0]) - x) or 0.5
        half_h = (1 + FIT_PADDING) * max(y - float(lo[1]), float(hi[1]) - y) or 0.5
        # The locked aspect widens one side of this range to the view's shape, about the same centre.
        self.view_box.setRange(QRectF(x - half_w, y - half_h, 2 * half_w, 2 * half_h), padding=0)

    def _set_focused(self, row: int) -> None:
        self.focused_row = row
        for item in (self.focus_item, self.focus_halo):
            if row < 0:
                item.clear()
            else:
                item.setData(x=[self.xy[row, 0]], y=[self.xy[row, 1]])

    def redraw(self) -> None:
        """Draw the dots into the image for the view as it is now (plus a margin around it)."""
        self._redraw_timer.stop()
        width, height = int(self.view_box.width()), int(self.view_box.height())
        if not len(self.xy) or width < 2 or height < 2:
            self._generation += 1
            self.dots.clear()
            self._drawn_rect = None
            return
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        w, h = x1 - x0, y1 - y0
        rect = QRectF(x0 - MARGIN * w, y0 - MARGIN * h, (1 + 2 * MARGIN) * w, (1 + 2 * MARGIN) * h)
        size = (round((1 + 2 * MARGIN) * width), round((1 + 2 * MARGIN) * height))
        self._generation += 1
        self._raster_pool.clear()  # a drawing still queued is out of date
        self._raster_pool.start(_RasterJob(self._generation, (self.xy, list(self.groups), self.marked_rows, rect,
                                                              *size), self._raster_signals))
        self._drawn_rect = rect
        self._drawn_pixel = (w / width, h / height)

    def wait_drawn(self) -> None:
        """Block until the dot image being drawn is shown (tests, screenshots)."""
        self._raster_pool.waitForDone()
        QCoreApplication.processEvents()

    def _on_raster_finished(self, generation: int, image: np.ndarray, rect: QRectF) -> None:
        if generation != self._generation:
            return  # the view moved on while it was drawn
        self.dots.setImage(image, autoLevels=False, levels=(0, 255))
        self.dots.setRect(rect)

    def _on_view_box_range_changed(self, *_args) -> None:
        """Panning inside the drawn margin only moves the image; a zoom or a pan past it draws it again."""
        if self._drawn_rect is None:
            return
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        width, height = max(1.0, self.view_box.width()), max(1.0, self.view_box.height())
        same_scale = all(abs(now - drawn) <= 0.01 * drawn for now, drawn in
                         zip(((x1 - x0) / width, (y1 - y0) / height), self._drawn_pixel, strict=True))
        inside = self._drawn_rect.contains(QRectF(x0, y0, x1 - x0, y1 - y0))
        if not (same_scale and inside):
            self._redraw_timer.start()

    def fit(self) -> None:
        if len(self.xy):
            lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
            self.view_box.setRange(QRectF(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]) or 1.0,
                                          float(hi[1] - lo[1]) or 1.0), padding=FIT_PADDING)
            self.redraw()

    def clear(self) -> None:
        self.xy = np.zeros((0, 2), dtype=np.float32)
        self.paths = []
        self.set_groups([])
        self.set_marked(np.zeros(0, dtype=np.int64))
        self._set_hovered(-1)
        self.empty_label.show()

    def rows_in(self, rect: QRectF) -> np.ndarray:
        """The rows whose dots lie inside ``rect`` (data coordinates)."""
        if not len(self.xy):
            return np.zeros(0, dtype=np.int64)
        x, y = self.xy[:, 0], self.xy[:, 1]
        inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
        return np.flatnonzero(inside)

    def nearest_row(self, view_pos: QPointF) -> int:
        """The row of the dot within ``HOVER_RADIUS_PX`` of ``view_pos`` (data coordinates), or -1."""
        if not len(self.xy):
            return -1
        px, py = self.view_box.viewPixelSize()
        if not (px > 0 and py > 0):
            return -1
        d2 = ((self.xy[:, 0] - view_pos.x()) / px) ** 2 + ((self.xy[:, 1] - view_pos.y()) / py) ** 2
        row = int(np.argmin(d2))
        return row if d2[row] <= HOVER_RADIUS_PX**2 else -1

    # --- slots -----------------------------------------------------------------------------------
    def _on_view_box_selected(self, rect: QRectF) -> None:
        self.rect_selected.emit(self.rows_in(rect))

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        self._mouse_scene = scene_pos
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _update_hover(self) -> None:
        pos = self._mouse_scene
        inside = pos is not None and self.view_box.sceneBoundingRect().contains(pos)
        row = self.nearest_row(self.view_box.mapSceneToView(pos)) if inside else -1
        self._set_hovered(row)

    def _set_hovered(self, row: int) -> None:
        if row == self.hovered_row:
            if row >= 0:
                self._place_preview()
            return
        self.hovered_row = row
        if row < 0:
            self.hover_item.clear()
            self.preview.hide()
        else:
            self.hover_item.setData(x=[self.xy[row, 0]], y=[self.xy[row, 1]])
            self.loader.request(self.paths[row])
            self._fill_preview()
            self._place_preview()
        self.hovered.emit(row)

    def _fill_preview(self) -> None:
        path = self.paths[self.hovered_row]
        pixmap = self.loader.pixmap(path)
        error = self.loader.error(path)
        if pixmap is not None:
            self.preview.image.setPixmap(pixmap)
        else:
            self.preview.image.setText("unreadable" if error is not None else "…")
        self.preview.text.setText(self._describe(self.hovered_row))
        self.preview.adjustSize()

    def _place_preview(self) -> None:
        if self._mouse_scene is None:
            return
        at = self.plot.mapFromScene(self._mouse_scene)
        size = self.preview.sizeHint()
        x = at.x() + 16 if at.x() + 16 + size.width() < self.plot.width() else at.x() - 16 - size.width()
        x = min(max(4, x), max(4, self.plot.width() - size.width() - 4))
        y = min(max(4, at.y() - size.height() // 2), max(4, self.plot.height() - size.height() - 4))
        self.preview.move(QPoint(int(x), int(y)))
        self.preview.show()
        self.preview.raise_()

    def _on_loader_loaded(self, path: str) -> None:
        if self.hovered_row >= 0 and self.paths[self.hovered_row] == path:
            self._fill_preview()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw_timer.start()
        margin = 40
        self.empty_label.setGeometry(margin, 0, max(0, self.plot.width() - 2 * margin), self.plot.height())

    def leaveEvent(self, event) -> None:
        self._mouse_scene = None
        self._set_hovered(-1)
        super().leaveEvent(event)

    def shutdown(self) -> None:
        self._hover_timer.stop()
        self._redraw_timer.stop()
        self._raster_pool.clear()
        self._raster_pool.waitForDone()
        self.loader.shutdown()
