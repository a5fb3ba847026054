"""Live training curves: loss, validation metric and learning rate, fed by the Trainer's events.

pyqtgraph's live-plot idiom: each curve reads a growing numpy buffer (capacity doubles when full),
``on_event`` only appends to the buffers and marks the plots dirty, and a ~5 Hz QTimer redraws
what changed. So a burst of events never costs more than a few array writes on the GUI thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.events import EvalEnded, StepEnded, TrainStarted
from clipstudio.engine.runs.layout import read_history, read_metrics
from clipstudio.gui.style import BASE, MUTED_TEXT, PLOT_COLOURS, TEXT

REDRAW_INTERVAL_MS = 200  # ~5 Hz: smooth enough to watch, cheap enough to never stall the GUI
INITIAL_CAPACITY = 256
# Legend corners as pyqtgraph anchors (x, y), 1 = right / bottom; the legend takes the emptiest one.
LEGEND_CORNERS = ((1, 0), (1, 1), (0, 0), (0, 1))
LEGEND_MARGIN_PX = 20  # the legend's offset from the corner plus a little air

# Validation metrics per epoch: key in EvalEnded.metrics -> legend label (pairs and class data).
EPOCH_METRICS = {
    "val_acc": "accuracy",
    "val_balanced_acc": "balanced accuracy",
    "val_mean_recall": "mean Recall@K",
}
_PAIRS_LABELS = {"val_acc": "image→text R@1"}


class SeriesBuffer:
    """x/y float64 arrays that grow by doubling; ``x``/``y`` are views of the filled part."""

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self._data = np.empty((2, max(1, capacity)), dtype=np.float64)
        self.size = 0

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    @property
    def x(self) -> np.ndarray:
        return self._data[0, : self.size]

    @property
    def y(self) -> np.ndarray:
        return self._data[1, : self.size]

    def append(self, x: float, y: float) -> None:
        if self.size == self.capacity:
            grown = np.empty((2, self.capacity * 2), dtype=np.float64)
            grown[:, : self.size] = self._data[:, : self.size]
            self._data = grown
        self._data[0, self.size] = x
        self._data[1, self.size] = y
        self.size += 1

    def clear(self) -> None:
        self.size = 0


class RateAxis(pg.AxisItem):
    """A learning-rate axis that reads as rates are written: 0, 5e-5, 1e-4, not "lr (x1e-06)" over 100.

    pyqtgraph's SI prefix would scale 1e-4 to 100 micro-units; here no prefix, and each tick in the
    shortest scientific form that tells it from its neighbours. Log mode (the probe's penalty path)
    keeps pyqtgraph's powers of ten.
    """

    def __init__(self, orientation: str = "left", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [rate_text(v * scale, spacing * scale) for v in values]


def rate_text(value: float, spacing: float) -> str:
    """``value`` as "1e-4", "2.5e-5" or "0": the fewest significant digits within 1/1000 of ``spacing``."""
    if value == 0 or abs(value) < spacing * 1e-6:  # a tick at zero computed as 1e-21
        return "0"
    for digits in range(4):
        text = f"{value:.{digits}e}"
        if abs(float(text) - value) <= abs(spacing) * 1e-3:
            break
    mantissa, exponent = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


class LivePlots(pg.GraphicsLayoutWidget):
    """Three stacked plots: loss (train per logged step, val per epoch), validation metric per epoch, lr."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground(BASE)
        self.setMinimumSize(320, 360)
        self.buffers: dict[str, SeriesBuffer] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._curve_plot: dict[str, pg.PlotItem] = {}
        self._dirty: set[str] = set()
        self._last_step = self._start_step = 0
        self._pairs = False
        self._closed = False
        self._legend_corner: dict[pg.PlotItem, tuple[int, int]] = {}

        self.loss_plot = self._plot(0, "Loss", "optimizer step", "loss")
        self.metric_plot = self._plot(1, "Validation", "epoch (0 = starting model)", "score", legend="bottom")
        self.metric_plot.setYRange(0.0, 1.0, padding=0.05)
        self.metric_plot.enableAutoRange(axis="y", enable=False)
        self.lr_plot = self._plot(2, "Learning rate", "optimizer step", "lr", legend=None, left=RateAxis())
        self.lr_plot.setXLink(self.loss_plot)

        self._add_curve("train_loss", self.loss_plot, "train", PLOT_COLOURS[0], symbol=None)
        self._add_curve("val_loss", self.loss_plot, "validation", PLOT_COLOURS[1], symbol="o")
        self._add_curve("lr", self.lr_plot, "learning rate", PLOT_COLOURS[2], symbol=None)
        for i, key in enumerate(EPOCH_METRICS):
            self._add_curve(key, self.metric_plot, EPOCH_METRICS[key], PLOT_COLOURS[(i + 3) % 7], symbol="o")

        self._set_metric_labels()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    # --- construction ------------------------------------------------------------------------------
    def _plot(
        self,
        row: int,
        title: str,
        x_label: str,
        y_label: str,
        legend: str | None = "top",
        left: pg.AxisItem | None = None,
    ) -> pg.PlotItem:
        plot = self.addPlot(row=row, col=0, axisItems={"left": left} if left else None)
        plot.setTitle(title, color=TEXT, size="10pt")
        plot.setLabel("bottom", x_label, color=MUTED_TEXT)
        plot.setLabel("left", y_label, color=MUTED_TEXT)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        if legend:
            # Top right suits falling curves (loss); rising scores keep the bottom right free instead.
            # Either moves to another corner when the curves reach it (_place_legend).
            offset = (-10, 10) if legend == "top" else (-10, -10)
            # One row (two entries side by side): low enough to find a free corner on a short plot.
            plot.addLegend(
                offset=offset, labelTextColor=TEXT, brush=pg.mkBrush(255, 255, 255, 200), colCount=2
            )
            self._legend_corner[plot] = (1, 0) if legend == "top" else (1, 1)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(MUTED_TEXT))
            axis.setTextPen(pg.mkPen(TEXT))
        plot.getAxis("bottom").enableAutoSIPrefix(False)  # steps and epochs are counts: never "(x0.001)"
        return plot

    def _add_curve(self, key: str, plot: pg.PlotItem, label: str, colour: str, symbol: str | None) -> None:
        # Antialiased lines wider than 1 px cost ~50 ms per repaint of a few hundred noisy points in
        # Qt's raster engine; per-step curves stay 1 px, the few-point epoch curves can be bold.
        pen = pg.mkPen(colour, width=2 if symbol else 1)
        kwargs = (
            {"symbol": symbol, "symbolSize": 7, "symbolBrush": colour, "symbolPen": colour} if symbol else {}
        )
        # A curve joins the legend when it first gets data, so unused metrics don't clutter it.
        curve = pg.PlotDataItem(pen=pen, name=label, antialias=True, **kwargs)
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        self.buffers[key] = SeriesBuffer()
        self._curves[key] = curve
        self._curve_plot[key] = plot

    # --- public ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty every curve (a new run)."""
        for key, buffer in self.buffers.items():
            buffer.clear()
            curve = self._curves[key]
            plot = self._curve_plot[key]
            if curve in plot.items:
                plot.removeItem(curve)
            curve.setData([], [])
        self._dirty.clear()
        self._last_step = self._start_step = 0
        self._pairs = False
        self._set_metric_labels()
        self._reset_ranges()

    def on_event(self, event: object) -> None:
        """Append the event's numbers to the buffers; the timer redraws. Cheap: called per event."""
        if isinstance(event, StepEnded):
            self._last_step = event.step
            if math.isfinite(event.loss):
                self._append("train_loss", event.step, event.loss)
            self._append("lr", event.step, event.lr)
        elif isinstance(event, EvalEnded):
            # The starting model (epoch 0) belongs at the run's first step, whenever its numbers arrive: a
            # run of several processes reports them only with the first epoch's history (process_run.py).
            step = self._start_step if event.epoch == 0 else self._last_step
            self._add_eval(event.epoch, event.as_dict(), step)
        elif isinstance(event, TrainStarted):
            self._last_step = self._start_step = event.start_step
            self.set_method(event.method)  # first: a change of log mode re-ranges the linked x axes
            self.set_extent(event.total_steps, event.epochs)
        else:
            return
        if self._dirty and not self._timer.isActive():
            self._timer.start()

    def set_method(self, method: str) -> None:
        """The third plot: the learning rate, or for the linear probe the penalty each epoch tried (log scale)."""
        probe = method == "linear_probe"
        self.lr_plot.setTitle("Penalty strength (L2)" if probe else "Learning rate", color=TEXT, size="10pt")
        self.lr_plot.setLabel("left", "strength" if probe else "lr", color=MUTED_TEXT)
        self.lr_plot.setLogMode(y=probe)
        self._curves["lr"].opts["name"] = "penalty strength" if probe else "learning rate"

    def set_extent(self, total_steps: int, epochs: int) -> None:
        """Fix the x axes to the whole run (steps 0..total, epochs 0..epochs), so the first points
        sit at the left of a run-long axis instead of mid-way along a range pyqtgraph guesses."""
        for plot in (self.loss_plot, self.lr_plot):  # x-linked: neither may re-range the other
            plot.enableAutoRange(axis="x", enable=False)
        self.loss_plot.setXRange(0, max(1, total_steps), padding=0.02)
        self.metric_plot.enableAutoRange(axis="x", enable=False)
        self.metric_plot.setXRange(0, max(1, epochs), padding=0.04)

    def load_run(self, run_dir: str | Path, steps_per_epoch: int, up_to_step: int) -> None:
        """Fill the curves from a run folder's step metrics and history (a resumed run's past)."""
        for record in read_metrics(run_dir, up_to_step):
            try:
                step, loss, lr = int(record["step"]), float(record["loss"]), float(record["lr"])
            except (KeyError, TypeError, ValueError):
                continue  # not a record the Trainer writes
            if math.isfinite(loss):
                self._append("train_loss", step, loss)
            self._append("lr", step, lr)
        try:
            history = read_history(run_dir)
        except ClipStudioError:
            history = {}  # the curves show the steps; the epochs' metrics start with this session
        if history.get("initial"):
            self._add_eval(0, history["initial"], 0)
        for i, epoch in enumerate(history.get("epoch", [])):
            values = {
                key: history[key][i] for key in history.get("val_keys", []) if i < len(history.get(key, []))
            }
            self._add_eval(int(epoch), values, int(epoch) * steps_per_epoch)
        self._last_step = up_to_step
        if self._dirty and not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Push the buffers of changed curves to pyqtgraph now (the timer calls this)."""
        if self._closed:  # pyqtgraph's close() deleted the plot items
            return
        for key in [k for k in self.buffers if k in self._dirty]:  # fixed order: stable legends
            buffer, curve, plot = self.buffers[key], self._curves[key], self._curve_plot[key]
            if curve not in plot.items and buffer.size:
                plot.addItem(curve)  # adds the legend entry too
            curve.setData(buffer.x, buffer.y)
        self._dirty.clear()
        for plot in (self.loss_plot, self.metric_plot):
            self._place_legend(plot)

    def _place_legend(self, plot: pg.PlotItem) -> None:
        """Move the legend to the corner of the plot that covers the fewest points (never the newest ones)."""
        legend, view = plot.legend, plot.getViewBox()
        if legend is None or view.width() <= 0 or view.height() <= 0 or not legend.items:
            return
        points = [
            (np.asarray(c.xData), np.asarray(c.yData))
            for c in plot.listDataItems()
            if c.xData is not None and len(c.xData)
        ]
        if not points:
            return
        xs, ys = np.concatenate([p[0] for p in points]), np.concatenate([p[1] for p in points])
        (x0, x1), (y0, y1) = view.viewRange()
        if view.autoRangeEnabled()[1]:  # the view follows the data: it may not have caught up yet
            y0, y1 = float(np.nanmin(ys)), float(np.nanmax(ys))
        w = (legend.boundingRect().width() + LEGEND_MARGIN_PX) / view.width() * (x1 - x0)
        h = (legend.boundingRect().height() + LEGEND_MARGIN_PX) / view.height() * ((y1 - y0) or 1.0)

        def covered(corner: tuple[int, int]) -> int:
            right, bottom = corner
            in_x = xs >= x1 - w if right else xs <= x0 + w
            in_y = ys <= y0 + h if bottom else ys >= y1 - h
            return int(np.count_nonzero(in_x & in_y))

        corners = sorted(LEGEND_CORNERS, key=lambda c: (covered(c), c != self._legend_corner.get(plot)))
        best = corners[0]
        if best != self._legend_corner.get(plot):
            self._legend_corner[plot] = best
            right, bottom = best
            offset = (-10 if right else 10, -10 if bottom else 10)
            legend.anchor(itemPos=best, parentPos=best, offset=offset)

    # --- internals ---------------------------------------------------------------------------------
    def _append(self, key: str, x: float, y: float) -> None:
        self.buffers[key].append(float(x), float(y))
        self._dirty.add(key)

    def _add_eval(self, epoch: int, metrics: dict, step: int) -> None:
        if metrics.get("val_mean_recall") is not None and not self._pairs:
            self._pairs = True
            self._set_metric_labels()
        value = metrics.get("val_loss")
        if value is not None and math.isfinite(value):
            self._append("val_loss", step, value)
        for key in EPOCH_METRICS:
            value = metrics.get(key)
            if value is not None and math.isfinite(value):
                self._append(key, epoch, value)

    def _reset_ranges(self) -> None:
        """Empty axes, not the last run's: pyqtgraph keeps a view range when its curves are emptied."""
        for plot in (self.loss_plot, self.lr_plot):
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
            plot.enableAutoRange(axis="y", enable=True)  # the new run's values set the height again
        self.metric_plot.setXRange(0, 1, padding=0.04)
        self.metric_plot.setYRange(0.0, 1.0, padding=0.05)

    def _set_metric_labels(self) -> None:
        labels = {**EPOCH_METRICS, **(_PAIRS_LABELS if self._pairs else {})}
        for key, label in labels.items():
            self._curves[key].opts["name"] = label
        self.metric_plot.setTitle(
            "Validation retrieval (pairs)" if self._pairs else "Validation accuracy", color=TEXT, size="10pt"
        )

    def close(self) -> bool:
        self._closed = True
        self._timer.stop()
        return super().close()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty and not self._timer.isActive():
            self._timer.start()

    def _on_timer_timeout(self) -> None:
        if not self._dirty or not self.isVisible():  # hidden: showEvent restarts the timer
            self._timer.stop()
            return
        self.redraw()
