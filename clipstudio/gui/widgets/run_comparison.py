"""A training run against where it started: the before/after metrics table and the WiSE-FT curve."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.gui.help import explain

_UP, _DOWN = QColor("#1e8e3e"), QColor("#c62828")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


class BeforeAfterTable(QTableWidget):
    """Metric | Before | After | Change, with gains in green and losses in red (percentage points)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["Metric", "Before", "After", "Change"])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def show_payloads(self, before: dict, after: dict) -> None:
        """Fill from two zero-shot payloads (``ZeroShotResult.to_dict()``-shaped)."""
        rows = [("Accuracy", before.get("accuracy"), after.get("accuracy")),
                ("Balanced accuracy", before.get("balanced_accuracy"), after.get("balanced_accuracy"))]
        for name in after.get("classes", []):
            b = before.get("per_class", {}).get(name, {}).get("recall")
            rows.append((f"{name} recall", b, after["per_class"][name]["recall"]))
        self.setRowCount(len(rows))
        for r, (metric, b, a) in enumerate(rows):
            delta = None if a is None or b is None else a - b
            texts = [metric, _pct(b), _pct(a), "–" if delta is None else f"{100 * delta:+.1f} pp"]
            for c, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 3 and delta is not None and abs(delta) >= 0.0005:
                    item.setForeground(_UP if delta > 0 else _DOWN)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)


class WiseCurve(QWidget):
    """An alpha slider (0 to 1 in steps of 0.1) over the curve of scores against alpha.

    ``alpha_changed`` fires on every slider step or click on the plot; ``sweep_requested`` when the
    user asks for the curve.
    """

    alpha_changed = Signal(float)
    sweep_requested = Signal()
    choose_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 10)
        self.slider.setValue(10)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.valueChanged.connect(self._on_slider_changed)
        self.alpha_label = QLabel()
        self.sweep_button = QPushButton("Compute curve (α 0 – 1)")
        self.sweep_button.setToolTip("Scores the mixed model at α = 0, 0.1, …, 1: each α encodes the images once.")
        self.sweep_button.clicked.connect(self.sweep_requested)
        self.choose_button = QPushButton("Choose α on validation")
        self.choose_button.setToolTip(
            "Scores α = 0, 0.1, …, 1 on the run's validation images (never the ones shown here) and moves the "
            "slider to the best balanced accuracy: the fair way to pick a mix.")
        self.choose_button.clicked.connect(self.choose_requested)
        self.choice_label = QLabel()
        self.choice_label.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "α  (0 = starting model, 1 = fine-tuned)")
        self.plot.setLabel("left", "score")
        self.plot.addLegend(offset=(-10, -10), labelTextColor="#222")
        self.plot.setXRange(0, 1, padding=0.04)
        self.plot.setYRange(0, 1, padding=0.04)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # scores, not "x0.001" units
            self.plot.getAxis(axis).setTextPen("#222")
            self.plot.getAxis(axis).setPen("#888")
        # Accuracy wide and pale under a dashed balanced accuracy: on balanced data they coincide.
        self._acc = self.plot.plot([], [], pen=pg.mkPen("#8fb3de", width=5), symbol="o", symbolSize=8,
                                   symbolBrush="#1f5fa8", name="accuracy")
        self._bal = self.plot.plot([], [], pen=pg.mkPen("#e07b00", width=2, style=Qt.PenStyle.DashLine),
                                   symbol="s", symbolSize=5, symbolBrush="#e07b00", name="balanced accuracy")
        self._val = self.plot.plot([], [], pen=pg.mkPen("#2a9d3a", width=2, style=Qt.PenStyle.DotLine),
                                   symbol="t", symbolSize=6, symbolBrush="#2a9d3a",
                                   name="balanced accuracy, validation images")
        self._line = pg.InfiniteLine(pos=1.0, angle=90, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine))
        self.plot.addItem(self._line)
        self.plot.scene().sigMouseClicked.connect(self._on_plot_clicked)

        layout = QVBoxLayout(self)
        note = QLabel("WiSE-FT mixes the starting and the fine-tuned weights; a mix often keeps most of the "
                      "gain and more of the original robustness. Slide, or click the curve, to see the grid "
                      "at that mix.")
        note.setWordWrap(True)
        layout.addWidget(note)
        row = QHBoxLayout()
        mix = QLabel("Mix")
        row.addWidget(mix)
        row.addWidget(self.slider, 1)
        row.addWidget(self.alpha_label)
        row.addWidget(explain("wise_ft", mix, self.slider, self.alpha_label))
        layout.addLayout(row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.sweep_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.choice_label)
        layout.addWidget(self.plot, 1)
        self._update_label()

    def alpha(self) -> float:
        return self.slider.value() / 10

    def reset(self) -> None:
        """Back to alpha 1 (the fine-tuned model) with no curve, without emitting alpha_changed."""
        self.slider.blockSignals(True)
        self.slider.setValue(10)
        self.slider.blockSignals(False)
        self._update_label()
        self.set_rows([])
        self.choice_label.clear()
        self._val.setData([], [])

    def set_choice(self, choice) -> None:
        """Move to the alpha chosen on validation (a ``WiseChoice``) and say how it was chosen."""
        metric = choice.metric.replace("_", " ")
        self.choice_label.setText(
            f"α = {choice.alpha:.1f} chosen on the {choice.validation}: {metric} "
            f"{choice.value:.3f} there (the dotted curve). The grid and Compute curve use the images shown, which "
            "played no part in the choice.")
        rows = [r for r in choice.sweep if r.get(choice.metric) is not None]
        self._val.setData([r["alpha"] for r in rows], [r[choice.metric] for r in rows])
        self.slider.setValue(int(round(choice.alpha * 10)))

    def set_rows(self, rows: list[dict]) -> None:
        """Plot ``wise_sweep`` rows (alpha, accuracy, balanced_accuracy)."""
        rows = [r for r in rows if r.get("accuracy") is not None]
        xs = [r["alpha"] for r in rows]
        self._acc.setData(xs, [r["accuracy"] for r in rows])
        self._bal.setData(xs, [r["balanced_accuracy"] for r in rows])

    def _update_label(self) -> None:
        a = self.alpha()
        note = " (starting model)" if a == 0 else " (fine-tuned)" if a == 1 else ""
        self.alpha_label.setText(f"α = {a:.1f}{note}")
        self._line.setValue(a)

    def _on_slider_changed(self, _value: int) -> None:
        self._update_label()
        self.alpha_changed.emit(self.alpha())

    def _on_plot_clicked(self, event) -> None:
        if not self.isEnabled():
            return
        x = self.plot.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
        self.slider.setValue(int(round(min(1.0, max(0.0, x)) * 10)))
