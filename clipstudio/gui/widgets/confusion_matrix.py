"""A clickable confusion matrix: counts in cells, coloured by the row-normalised value.

Rows are the true class, columns the predicted one. Clicking a cell selects it and emits
``cell_selected(row, col)``; clicking it again clears the selection (``cell_selected(-1, -1)``).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from clipstudio.engine.plural import plural

_LOW = QColor("#f4f7fb")
_HIGH = QColor("#1f5fa8")
_MAX_LABEL_PX = 150
_MIN_CELL, _MAX_CELL = 22, 64


def _blend(t: float) -> QColor:
    t = max(0.0, min(1.0, t))
    return QColor(
        round(_LOW.red() + t * (_HIGH.red() - _LOW.red())),
        round(_LOW.green() + t * (_HIGH.green() - _LOW.green())),
        round(_LOW.blue() + t * (_HIGH.blue() - _LOW.blue())),
    )


class ConfusionMatrixView(QWidget):
    cell_selected = Signal(int, int)  # (true row, predicted column); (-1, -1) when cleared

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._matrix: list[list[int]] = []
        self._selected: tuple[int, int] | None = None
        self._hover: tuple[int, int] | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # --- data ---------------------------------------------------------------------------------

    def set_matrix(self, class_names: list[str], matrix: list[list[int]]) -> None:
        self._names = list(class_names)
        self._matrix = [list(map(int, row)) for row in matrix]
        self._selected = None
        self._hover = None
        self.updateGeometry()
        self.update()

    def clear(self) -> None:
        self.set_matrix([], [])

    def counts(self) -> list[list[int]]:
        """The matrix shown: ``counts()[true][predicted]``."""
        return [list(row) for row in self._matrix]

    @property
    def selected_cell(self) -> tuple[int, int] | None:
        return self._selected

    def select_cell(self, row: int, col: int) -> None:
        """Select (or, if already selected, clear) a cell, as a click does."""
        n = len(self._names)
        if not (0 <= row < n and 0 <= col < n):
            return
        self._selected = None if self._selected == (row, col) else (row, col)
        self.update()
        self.cell_selected.emit(*(self._selected or (-1, -1)))

    def clear_selection(self) -> None:
        if self._selected is not None:
            self._selected = None
            self.update()
            self.cell_selected.emit(-1, -1)

    # --- geometry -----------------------------------------------------------------------------

    def _label_width(self) -> int:
        metrics = QFontMetrics(self.font())
        widest = max((metrics.horizontalAdvance(n) for n in self._names), default=0)
        return min(widest + 8, _MAX_LABEL_PX)

    def _layout(self) -> tuple[QRect, int]:
        """The cell area and the cell size (cells are square)."""
        n = max(1, len(self._names))
        title = QFontMetrics(self.font()).height() + 4
        left = title + self._label_width()
        # x labels are drawn at 45 degrees; their vertical extent is about 0.71 x their length.
        bottom = title + int(self._label_width() * 0.72) + 6
        avail_w = self.width() - left - 8
        avail_h = self.height() - bottom - 8
        cell = max(_MIN_CELL, min(_MAX_CELL, min(avail_w, avail_h) // n))
        return QRect(left, 8, cell * n, cell * n), cell

    def sizeHint(self) -> QSize:
        n = max(2, len(self._names))
        extra = self._label_width() + 2 * QFontMetrics(self.font()).height() + 30
        side = extra + 40 * n
        return QSize(side, side)

    def cell_at(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        if not self._names:
            return None
        area, cell = self._layout()
        x, y = pos.x() - area.left(), pos.y() - area.top()
        if x < 0 or y < 0 or x >= area.width() or y >= area.height():
            return None
        return int(y // cell), int(x // cell)

    def cell_rect(self, row: int, col: int) -> QRect:
        area, cell = self._layout()
        return QRect(area.left() + col * cell, area.top() + row * cell, cell, cell)

    # --- events -------------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hover = self.cell_at(event.position())
        if hover != self._hover:
            self._hover = hover
            if hover is None:
                self.setToolTip("")
            else:
                r, c = hover
                count = self._matrix[r][c]
                total = sum(self._matrix[r]) or 1
                self.setToolTip(
                    f"True {self._names[r]}, predicted {self._names[c]}: {plural(count, 'image')}, "
                    f"{count / total:.0%} of the row.\nClick to show them in the grid; click again to clear."
                )
            self.update()

    def leaveEvent(self, event) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            hit = self.cell_at(event.position())
            if hit is not None:
                self.select_cell(*hit)
                return
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_colour = self.palette().windowText().color()
        if not self._names:
            painter.setPen(text_colour)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No results yet")
            return
        area, cell = self._layout()
        metrics = QFontMetrics(self.font())
        label_w = self._label_width()
        small = QFont(self.font())
        if cell < 30:
            small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        n = len(self._names)
        for r in range(n):
            total = sum(self._matrix[r])
            for c in range(n):
                count = self._matrix[r][c]
                value = count / total if total else 0.0
                rect = self.cell_rect(r, c)
                painter.fillRect(rect, _blend(value))
                painter.setFont(small)
                painter.setPen(QColor("white") if value > 0.55 else QColor("#1b1b1b"))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(count))
        painter.setPen(QPen(QColor("#c9d2dc"), 1))
        for i in range(n + 1):
            painter.drawLine(area.left() + i * cell, area.top(), area.left() + i * cell, area.bottom() + 1)
            painter.drawLine(area.left(), area.top() + i * cell, area.right() + 1, area.top() + i * cell)
        if self._hover is not None:
            painter.setPen(QPen(QColor("#5c6b7a"), 2))
            painter.drawRect(self.cell_rect(*self._hover).adjusted(1, 1, -1, -1))
        if self._selected is not None:
            painter.setPen(QPen(QColor("#f59e0b"), 3))
            painter.drawRect(self.cell_rect(*self._selected).adjusted(1, 1, -1, -1))

        painter.setFont(self.font())
        painter.setPen(text_colour)
        for r, name in enumerate(self._names):  # y labels: right-aligned beside their row
            rect = QRect(area.left() - label_w - 4, area.top() + r * cell, label_w, cell)
            elided = metrics.elidedText(name, Qt.TextElideMode.ElideRight, label_w)
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, elided)
        for c, name in enumerate(self._names):  # x labels: rotated 45 degrees, ending under their column
            elided = metrics.elidedText(name, Qt.TextElideMode.ElideRight, label_w)
            painter.save()
            painter.translate(area.left() + c * cell + cell / 2 + metrics.ascent() / 3, area.bottom() + 6)
            painter.rotate(-45)
            width = metrics.horizontalAdvance(elided)
            painter.drawText(-width, metrics.ascent(), elided)
            painter.restore()
        bold = QFont(self.font())
        bold.setBold(True)
        painter.setFont(bold)
        below = area.bottom() + 6 + int(label_w * 0.72)
        painter.drawText(
            QRect(area.left(), below, area.width(), metrics.height() + 4), Qt.AlignmentFlag.AlignCenter,
            "Predicted class",
        )
        painter.save()
        painter.translate(metrics.height(), area.center().y())
        painter.rotate(-90)
        painter.drawText(QRect(-area.height() // 2, -metrics.height(), area.height(), metrics.height() + 4),
                         Qt.AlignmentFlag.AlignCenter, "True class")
        painter.restore()
