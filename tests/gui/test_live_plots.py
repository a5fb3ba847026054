"""LivePlots: events fill growing buffers; the timer redraws; reset empties."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from clipstudio.engine.events import EvalEnded, StepEnded, TrainStarted
from clipstudio.engine.runs.layout import HISTORY_FILE, METRICS_FILE
from clipstudio.gui.widgets.live_plots import INITIAL_CAPACITY, LivePlots, SeriesBuffer


def _step(step: int, loss: float = 1.0, lr: float = 1e-4) -> StepEnded:
    return StepEnded(epoch=1, step=step, total_steps=10_000, loss=loss, lr=lr, images_per_s=50.0)


@pytest.fixture
def plots(qtbot):
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_buffer_growth_beyond_initial_capacity_keeps_every_point():
    buffer = SeriesBuffer(capacity=4)
    for i in range(1000):
        buffer.append(i, i * 0.5)
    assert buffer.size == 1000
    assert buffer.capacity >= 1000
    np.testing.assert_array_equal(buffer.x, np.arange(1000))
    np.testing.assert_array_equal(buffer.y, np.arange(1000) * 0.5)


def test_many_steps_all_reach_the_curves(plots, qtbot):
    n = INITIAL_CAPACITY * 5 + 3
    for i in range(1, n + 1):
        plots.on_event(_step(i, loss=1.0 / i))
    assert plots.buffers["train_loss"].size == n
    assert plots.buffers["lr"].size == n
    qtbot.waitUntil(lambda: not plots._dirty, timeout=5000)  # the redraw timer ran
    x, y = plots._curves["train_loss"].getOriginalDataset()
    assert len(x) == n
    assert y[-1] == pytest.approx(1.0 / n)


def test_epoch_zero_and_validation_points(plots):
    plots.on_event(TrainStarted("run", "full", 2, 5, 10, 20, 5, "cpu"))
    plots.on_event(
        EvalEnded(epoch=0, metrics=(("val_loss", 2.0), ("val_acc", 0.5), ("val_balanced_acc", 0.4)))
    )
    for step in range(1, 6):
        plots.on_event(_step(step))
    plots.on_event(
        EvalEnded(epoch=1, metrics=(("val_loss", 1.5), ("val_acc", 0.7), ("val_balanced_acc", 0.6)))
    )
    plots.redraw()
    assert list(plots.buffers["val_acc"].x) == [0, 1]
    assert list(plots.buffers["val_balanced_acc"].y) == pytest.approx([0.4, 0.6])
    assert list(plots.buffers["val_loss"].x) == [0, 5]  # validation loss sits at the epoch's last step
    assert plots.buffers["val_mean_recall"].size == 0
    legend = [label.text for _sample, label in plots.metric_plot.legend.items]
    assert legend == ["accuracy", "balanced accuracy"]


def test_the_starting_models_validation_loss_sits_at_the_first_step_even_when_it_arrives_late(plots):
    # Several processes: the starting model's numbers come with the first epoch's history, after its steps.
    plots.on_event(TrainStarted("run", "full", 2, 3, 6, 12, 6, "2 CPU processes"))
    for step in range(1, 4):
        plots.on_event(_step(step))
    plots.on_event(EvalEnded(epoch=0, metrics=(("val_loss", 2.0), ("val_balanced_acc", 0.4))))
    plots.on_event(EvalEnded(epoch=1, metrics=(("val_loss", 1.5), ("val_balanced_acc", 0.6))))
    assert list(plots.buffers["val_loss"].x) == [0, 3]
    assert list(plots.buffers["val_balanced_acc"].x) == [0, 1]


def test_the_axes_span_the_whole_run_from_its_first_point(plots):
    """One point at step 0 used to sit mid-way along a guessed -400..400 axis labelled "(x0.001)"."""
    plots.on_event(TrainStarted("run", "full", 10, 15, 150, 480, 120, "cpu"))
    plots.on_event(EvalEnded(epoch=0, metrics=(("val_loss", 3.7), ("val_acc", 0.4))))
    plots.redraw()
    (x_lo, x_hi), _ = plots.loss_plot.viewRange()
    assert x_lo <= 0 < 10 and 150 <= x_hi < 160
    (e_lo, e_hi), _ = plots.metric_plot.viewRange()
    assert e_lo <= 0 and 10 <= e_hi < 11
    lr_lo, lr_hi = plots.lr_plot.viewRange()[0]  # linked to the loss plot
    assert lr_lo <= 0 and 150 <= lr_hi < 160
    assert plots.loss_plot.getAxis("bottom").labelString().count("x0.001") == 0


def test_pairs_show_mean_recall(plots):
    plots.on_event(EvalEnded(epoch=0, metrics=(("val_acc", 0.1), ("val_mean_recall", 0.3))))
    plots.redraw()
    assert plots.buffers["val_mean_recall"].size == 1
    legend = [label.text for _sample, label in plots.metric_plot.legend.items]
    assert "mean Recall@K" in legend


def test_hidden_plots_redraw_when_shown_again(plots, qtbot):
    plots.hide()
    plots.on_event(_step(1))
    qtbot.wait(3 * 200)
    assert plots._dirty  # nothing drawn while hidden
    plots.show()
    qtbot.waitUntil(lambda: not plots._dirty, timeout=5000)
    assert len(plots._curves["train_loss"].getOriginalDataset()[0]) == 1


def test_reset_empties_curves_and_legends(plots):
    for step in range(1, 20):
        plots.on_event(_step(step))
    plots.on_event(EvalEnded(epoch=0, metrics=(("val_acc", 0.1),)))
    plots.redraw()
    plots.reset()
    plots.redraw()
    assert all(buffer.size == 0 for buffer in plots.buffers.values())
    assert plots.loss_plot.legend.items == []
    assert plots.metric_plot.legend.items == []


def test_load_run_restores_past_curves(plots, tmp_path):
    import json

    lines = [
        json.dumps({"epoch": 1, "step": s, "loss": 1.0, "lr": 1e-4, "images_per_s": 9.0}) for s in (2, 4, 6)
    ]
    (tmp_path / METRICS_FILE).write_text("\n".join(lines) + "\n{broken", encoding="utf-8")
    history = {
        "epoch": [1],
        "val_keys": ["val_loss", "val_acc"],
        "val_loss": [0.9],
        "val_acc": [0.6],
        "initial": {"val_loss": 1.2, "val_acc": 0.3},
    }
    (tmp_path / HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")
    plots.load_run(tmp_path, steps_per_epoch=4, up_to_step=5)
    assert list(plots.buffers["train_loss"].x) == [2, 4]
    assert list(plots.buffers["val_acc"].x) == [0, 1]
    assert list(plots.buffers["val_loss"].x) == [0, 4]


def test_reset_forgets_the_previous_runs_axis_ranges(plots):
    plots.on_event(TrainStarted("run", "full", 10, 100, 1000, 20, 5, "cpu"))
    for step in range(1, 201):
        plots.on_event(_step(step, loss=50.0 + step))
    plots.redraw()
    plots.loss_plot.vb.updateAutoRange()  # what the next paint would do
    assert plots.loss_plot.viewRange()[0][1] > 900 and plots.loss_plot.viewRange()[1][1] > 200

    plots.reset()

    (x0, x1), (y0, y1) = plots.loss_plot.viewRange()
    assert x1 < 2 and y1 < 2  # not the old run's 1000 steps and losses up to 250
    assert plots.metric_plot.viewRange()[0][1] < 2
    plots.on_event(_step(1, loss=0.3))
    plots.redraw()
    plots.loss_plot.vb.updateAutoRange()
    assert plots.loss_plot.viewRange()[1][1] < 1  # the new run's losses set the height


def _points_under_legend(plot) -> int:
    """Curve points whose on-screen position lies under the plot's legend box."""
    legend_rect = plot.legend.sceneBoundingRect()
    view = plot.getViewBox()
    count = 0
    for curve in plot.listDataItems():
        for x, y in zip(curve.xData, curve.yData, strict=True):
            if legend_rect.contains(view.mapViewToScene(pg.Point(float(x), float(y)))):
                count += 1
    return count


def test_the_legend_moves_off_the_newest_points(plots, qtbot):
    """A loss that barely falls ends in the top-right corner, where the loss legend starts."""
    plots.resize(700, 600)
    plots.on_event(TrainStarted("run", "full", 2, 50, 100, 480, 120, "cpu"))
    for step in range(1, 101):
        plots.on_event(_step(step, loss=3.0 - 0.5 * (step < 20) * (20 - step) / 20))  # dips, then flat and high
    plots.on_event(EvalEnded(epoch=1, metrics=(("val_loss", 3.0),)))
    plots.redraw()
    qtbot.wait(50)
    plots.redraw()  # the layout has settled: place against the final geometry
    qtbot.wait(50)

    assert _points_under_legend(plots.loss_plot) == 0
    assert plots._legend_corner[plots.loss_plot] != (1, 0)  # not the top right any more


def test_a_linear_probe_plots_its_penalty_strengths_on_a_log_axis_not_a_learning_rate(plots):
    plots.on_event(TrainStarted("run", "linear_probe", 10, 1, 10, 40, 10, "cpu"))
    assert plots.lr_plot.titleLabel.text == "Penalty strength (L2)"
    assert plots.lr_plot.getAxis("left").logMode
    for step, strength in enumerate((1.0, 0.1, 0.01), start=1):
        plots.on_event(StepEnded(epoch=step, step=step, total_steps=10, loss=0.5, lr=strength, images_per_s=100.0))
    plots.redraw()
    for plot in (plots.loss_plot, plots.lr_plot):  # the whole path stays in view (found with real clicks)
        low, high = plot.viewRange()[0]
        assert low <= 0 and high >= 10
    plots.on_event(TrainStarted("run", "full", 2, 5, 10, 20, 5, "cpu"))
    assert plots.lr_plot.titleLabel.text == "Learning rate" and not plots.lr_plot.getAxis("left").logMode


def test_the_learning_rate_axis_reads_as_rates_are_written(plots):
    plots.on_event(TrainStarted("run", "full", 2, 5, 10, 20, 5, "cpu"))
    for step in range(1, 11):
        plots.on_event(_step(step, lr=1e-4 * step / 10))  # warm-up to 1e-4
    plots.redraw()
    axis = plots.lr_plot.getAxis("left")
    plots.lr_plot.getViewBox().autoRange()
    assert axis.autoSIPrefixScale == 1.0 and "x1e" not in axis.labelString()  # not "lr (x1e-06)" over 100
    low, high = plots.lr_plot.viewRange()[1]
    ticks = [value for _spacing, values in axis.tickValues(low, high, 200) for value in values]
    strings = axis.tickStrings(ticks, axis.autoSIPrefixScale, ticks[1] - ticks[0])
    assert "1e-4" in strings and all("e-" in s or s == "0" for s in strings)
    assert axis.tickStrings([0.0, 2.5e-5, 5e-5, 7.5e-5], 1.0, 2.5e-5) == ["0", "2.5e-5", "5e-5", "7.5e-5"]
