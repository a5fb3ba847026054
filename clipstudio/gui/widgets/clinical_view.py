"""The clinical view of one scored model: ROC and PR curves, the operating point, calibration.

``ClinicalPages.set_scoring(clinical, labels, probs)`` takes the engine's ``ClinicalMetrics`` (from
``engine.evaluation.clinical_scoring.score_clinical``) and the report images' labels and calibrated
probabilities. Everything it shows is computed by the engine: the curves, AUCs and calibration come
with ``clinical``; moving the operating-point slider (binary tasks) calls
``engine.evaluation.operating_point.apply_operating_point`` on the same probabilities.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.evaluation.clinical import ClinicalMetrics
from clipstudio.engine.evaluation.operating_point import (
    OperatingPoint,
    OperatingPointMetrics,
    apply_operating_point,
)
from clipstudio.gui.help import explain
from clipstudio.gui.style import BASE, MUTED_TEXT, PLOT_COLOURS, TEXT
from clipstudio.gui.widgets.operating_point_rule import OperatingPointRuleChooser

SLIDER_STEPS = 1000  # threshold resolution 0.001
HOVER_RADIUS = 0.05  # data units: how near the mouse must be to a curve point to describe it


def _pct(estimate: dict | None) -> str:
    """'87.0 % (95 % CI 80.1-92.3 %)' or the reason the figure is undefined."""
    if not estimate:
        return "–"
    value = estimate.get("value")
    if value is None:
        return f"undefined ({estimate.get('reason') or 'no images'})"
    text = f"{100 * value:.1f} %"
    ci = estimate.get("ci95")
    if ci:
        text += f" (95 % CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f} %)"
    return text


def _auc_text(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None:
        reason = (estimate or {}).get("reason") or "undefined"
        return f"AUC undefined: {reason}"
    text = f"AUC {estimate['value']:.3f}"
    ci = estimate.get("ci95")
    if ci:
        text += f" (95 % CI {ci[0]:.3f}-{ci[1]:.3f})"
    return text + f", n={estimate.get('n', '?')}"


def _plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    widget = pg.PlotWidget(background=BASE)
    widget.setMenuEnabled(False)
    widget.setMouseEnabled(x=False, y=False)
    widget.hideButtons()
    plot = widget.getPlotItem()
    plot.setTitle(title, color=TEXT, size="10pt")
    plot.setLabel("bottom", x_label, color=MUTED_TEXT)
    plot.setLabel("left", y_label, color=MUTED_TEXT)
    plot.setXRange(0, 1, padding=0.02)
    plot.setYRange(0, 1, padding=0.02)
    plot.showGrid(x=True, y=True, alpha=0.15)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(MUTED_TEXT))
        axis.setTextPen(pg.mkPen(TEXT))
        axis.enableAutoSIPrefix(False)
    return widget


class CurvesTab(QWidget):
    """ROC and precision-recall curves of one class against the rest; hover names threshold and rates."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_combo = QComboBox()
        self.class_combo.currentIndexChanged.connect(self._draw)
        self.auc_label = QLabel()
        self.auc_label.setWordWrap(True)
        self.hover_label = QLabel("Point at a curve to see its threshold, sensitivity and specificity.")
        self.hover_label.setObjectName("hint")
        self.hover_label.setWordWrap(True)  # beside the AUC link: wraps, never cut off
        self.roc_plot = _plot("ROC", "1 - specificity (false positive rate)", "sensitivity")
        self.pr_plot = _plot("Precision-recall", "recall (sensitivity)", "precision (PPV)")
        diagonal = pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen(MUTED_TEXT, width=1, style=Qt.PenStyle.DashLine))
        self.roc_plot.addItem(diagonal)
        self.roc_curve = pg.PlotDataItem(pen=pg.mkPen(PLOT_COLOURS[0], width=2))
        self.pr_curve = pg.PlotDataItem(pen=pg.mkPen(PLOT_COLOURS[1], width=2))
        self.roc_plot.addItem(self.roc_curve)
        self.pr_plot.addItem(self.pr_curve)
        marker = dict(size=11, brush=pg.mkBrush(PLOT_COLOURS[3]), pen=pg.mkPen("w", width=1.5))
        self.roc_marker = pg.ScatterPlotItem(**marker)
        self.roc_plot.addItem(self.roc_marker)
        self.roc_hover = pg.ScatterPlotItem(size=8, brush=pg.mkBrush(TEXT))
        self.roc_plot.addItem(self.roc_hover)
        self.roc_plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._curves: dict[str, dict] = {}
        self._aucs: dict[str, dict] = {}

        top = QHBoxLayout()
        top.addWidget(QLabel("Class"))
        top.addWidget(self.class_combo)
        top.addWidget(self.auc_label, 1)
        plots = QHBoxLayout()
        plots.addWidget(self.roc_plot)
        plots.addWidget(self.pr_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(top)
        layout.addLayout(plots, 1)
        bottom = QHBoxLayout()  # the AUC's link here, so the AUC line above keeps the width
        bottom.addWidget(self.hover_label, 1)
        bottom.addWidget(explain("auc", self.auc_label, text="What does AUC mean?"))
        layout.addLayout(bottom)

    def set_curves(self, auc: dict, roc: dict) -> None:
        """``auc``/``roc``: the JSON blocks of ``ClinicalMetrics.to_dict()``."""
        self._curves = dict(roc.get("per_class") or {})
        self._aucs = dict(auc.get("per_class") or {})
        macro = auc.get("macro") or {}
        self._macro_text = "" if auc.get("positive_class") else f"Macro (mean over classes): {_auc_text(macro)}"
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for name in self._curves:
            self.class_combo.addItem(name)
        self.class_combo.setEnabled(len(self._curves) > 1)
        self.class_combo.blockSignals(False)
        self._draw()

    def current_class(self) -> str | None:
        return self.class_combo.currentText() or None

    def show_marker(self, fpr: float | None, tpr: float | None) -> None:
        """The operating point on the ROC curve (None hides it)."""
        self.roc_marker.setData([] if fpr is None else [fpr], [] if tpr is None else [tpr])

    def _draw(self, *_args) -> None:
        name = self.current_class()
        curves = self._curves.get(name or "") or {}
        roc, pr = curves.get("roc"), curves.get("pr")
        self.roc_curve.setData(roc["fpr"], roc["tpr"]) if roc else self.roc_curve.setData([], [])
        self.pr_curve.setData(pr["recall"], pr["precision"]) if pr else self.pr_curve.setData([], [])
        self.roc_hover.setData([], [])
        lines = []
        if name:
            lines.append(f"<b>{name}</b> vs the rest: {_auc_text(self._aucs.get(name, {}))}")
            ap = (curves.get("average_precision") or {}).get("value")
            if ap is not None:
                lines.append(f"average precision {ap:.3f}")
        if self._macro_text:
            lines.append(self._macro_text)
        self.auc_label.setText(" · ".join(lines))

    def _on_mouse_moved(self, scene_pos) -> None:
        roc = (self._curves.get(self.current_class() or "") or {}).get("roc")
        if not roc or not self.roc_plot.sceneBoundingRect().contains(scene_pos):
            return
        point = self.roc_plot.getPlotItem().vb.mapSceneToView(scene_pos)
        fpr, tpr = np.asarray(roc["fpr"], dtype=float), np.asarray(roc["tpr"], dtype=float)
        distance = np.hypot(fpr - point.x(), tpr - point.y())
        i = int(np.argmin(distance))
        if distance[i] > HOVER_RADIUS:
            self.roc_hover.setData([], [])
            return
        self.roc_hover.setData([fpr[i]], [tpr[i]])
        threshold = roc["threshold"][i]
        at = "nothing called positive" if threshold is None else f"probability ≥ {threshold:.3f}"
        self.hover_label.setText(
            f"Threshold: {at} → sensitivity {100 * tpr[i]:.1f} %, specificity {100 * (1 - fpr[i]):.1f} %"
        )


class OperatingPointPanel(QWidget):
    """Binary tasks: a threshold slider with live sensitivity, specificity, PPV, NPV and the 2x2 counts."""

    changed = Signal(object)  # OperatingPointMetrics at the slider's threshold

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.valueChanged.connect(self._on_slider)
        self.threshold_label = QLabel()
        self.chosen_label = QLabel()
        self.chosen_label.setObjectName("hint")
        self.chosen_label.setWordWrap(True)
        self.rates_label = QLabel()
        self.rates_label.setWordWrap(True)
        self.rates_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        caption = QLabel("Operating point")
        row.addWidget(caption)
        row.addWidget(self.slider, 1)
        row.addWidget(self.threshold_label)
        row.addWidget(explain("operating_point", caption, self.slider, self.threshold_label))
        self.rule = OperatingPointRuleChooser()  # how the slider's starting threshold is chosen
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.rule)
        layout.addLayout(row)
        layout.addWidget(self.chosen_label)
        layout.addWidget(self.rates_label)
        self._positive: np.ndarray | None = None
        self._scores: np.ndarray | None = None
        self._point: OperatingPoint | None = None
        self.metrics: OperatingPointMetrics | None = None

    def set_data(self, point: OperatingPoint, positive: np.ndarray, scores: np.ndarray, chosen_text: str) -> None:
        """``scores``: the positive class's calibrated probability per report image."""
        self._point, self._positive, self._scores = point, np.asarray(positive, bool), np.asarray(scores, float)
        self.chosen_label.setText(chosen_text)
        self.slider.blockSignals(True)
        self.slider.setValue(round(min(max(point.threshold, 0.0), 1.0) * SLIDER_STEPS))
        self.slider.blockSignals(False)
        self._apply(point.threshold)

    def clear(self) -> None:
        self._point = self._positive = self._scores = None
        self.metrics = None

    def set_threshold(self, threshold: float) -> None:
        self.slider.setValue(round(min(max(threshold, 0.0), 1.0) * SLIDER_STEPS))

    def _on_slider(self, value: int) -> None:
        self._apply(value / SLIDER_STEPS)

    def _apply(self, threshold: float) -> None:
        if self._point is None or self._positive is None or self._scores is None:
            return
        point = OperatingPoint(rule="fixed", threshold=threshold, positive_class=self._point.positive_class,
                               temperature=self._point.temperature)
        m = apply_operating_point(point, self._positive, self._scores)
        self.metrics = m
        self.threshold_label.setText(f"P({point.positive_class}) ≥ {threshold:.3f}")
        self.rates_label.setText(
            f"sensitivity {_pct(m.sensitivity.to_dict())} · specificity {_pct(m.specificity.to_dict())}<br>"
            f"PPV {_pct(m.ppv.to_dict())} · NPV {_pct(m.npv.to_dict())}<br>"
            f"called {point.positive_class}: {m.tp} true, {m.fp} false · called otherwise: {m.tn} true, "
            f"{m.fn} missed (n={m.n}; Wilson 95 % intervals)"
        )
        self.changed.emit(m)


class CalibrationTab(QWidget):
    """Reliability diagram before and after temperature scaling, ECE, and the conformal prediction sets."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.conformal_label = QLabel()
        self.conformal_label.setWordWrap(True)
        self.plot = _plot("Reliability", "confidence (mean predicted probability)", "accuracy")
        self.plot.getPlotItem().addLegend(offset=(10, 10), labelTextColor=TEXT, brush=pg.mkBrush(255, 255, 255, 200))
        self.plot.addItem(pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen(MUTED_TEXT, width=1, style=Qt.PenStyle.DashLine)))
        self.before = pg.PlotDataItem(pen=pg.mkPen(PLOT_COLOURS[1], width=2), symbol="o", symbolSize=7,
                                      symbolBrush=PLOT_COLOURS[1], name="as the model says")
        self.after = pg.PlotDataItem(pen=pg.mkPen(PLOT_COLOURS[0], width=2), symbol="s", symbolSize=7,
                                     symbolBrush=PLOT_COLOURS[0], name="after temperature scaling")
        self.plot.addItem(self.before)
        self.plot.addItem(self.after)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.summary, 1)
        summary_row.addWidget(explain("calibration", self.summary), 0, Qt.AlignmentFlag.AlignTop)
        conformal_row = QHBoxLayout()
        conformal_row.addWidget(self.conformal_label, 1)
        conformal_row.addWidget(explain("prediction_sets", self.conformal_label), 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(summary_row)
        layout.addWidget(self.plot, 1)
        layout.addLayout(conformal_row)

    def set_calibration(self, calibration: dict, conformal: dict) -> None:
        def xy(bins: list[dict] | None) -> tuple[list, list]:
            bins = bins or []
            return [b["confidence"] for b in bins], [b["accuracy"] for b in bins]

        self.before.setData(*xy(calibration.get("reliability")))
        self.after.setData(*xy(calibration.get("reliability_after")))
        ece, ece_after, t = calibration.get("ece"), calibration.get("ece_after"), calibration.get("temperature")
        text = f"Expected calibration error (ECE, {calibration.get('n_bins', 10)} equal-count bins): "
        text += "–" if ece is None else f"<b>{100 * ece:.1f} %</b>"
        if t is not None and ece_after is not None:
            fitted = calibration.get("fitted_on") or {}
            text += (f" → <b>{100 * ece_after:.1f} %</b> after temperature scaling (T = {t:.2f}, fitted on "
                     f"{fitted.get('n', '?')} validation images). Probabilities shown in the app are the "
                     "calibrated ones.")
        else:
            text += f". Not recalibrated: {calibration.get('reason') or 'no validation images'}."
        text += f" n={calibration.get('n', '?')}."
        self.summary.setText(text)
        self.conformal_label.setText(_conformal_text(conformal))


def _conformal_text(conformal: dict) -> str:
    target = conformal.get("coverage_target")
    if conformal.get("coverage") is None:
        return f"Prediction sets: not computed ({conformal.get('reason') or 'no validation images'})."
    return (
        f"Prediction sets (split conformal, {str(conformal.get('score', 'lac')).upper()}, calibrated on "
        f"validation): aiming at {100 * target:.0f} % coverage, the true class was in the set for "
        f"<b>{100 * conformal['coverage']:.1f} %</b> of {conformal.get('n', '?')} test images; "
        f"mean set size <b>{conformal['mean_set_size']:.2f}</b> classes."
    )


class ClinicalPages(QObject):
    """Two pages for a screen's tab widget: ``roc_page`` ("ROC / PR", with the operating point for
    binary tasks) and ``calibration_page`` ("Calibration")."""

    operating_point_changed = Signal(object)  # OperatingPointMetrics (binary tasks)
    operating_point_rule_chosen = Signal(str)  # "youden", "sensitivity=0.95", ... (binary tasks)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.curves = CurvesTab()
        self.operating_point = OperatingPointPanel()
        self.operating_point.changed.connect(self._on_operating_point_changed)
        self.operating_point.rule.rule_chosen.connect(self.operating_point_rule_chosen)
        self.roc_page = QWidget()
        roc_layout = QVBoxLayout(self.roc_page)
        roc_layout.addWidget(self.curves, 1)
        roc_layout.addWidget(self.operating_point)
        self.calibration = CalibrationTab()
        self.calibration_page = self.calibration
        self.clinical: ClinicalMetrics | None = None
        self.set_scoring(None)

    def set_scoring(self, clinical: ClinicalMetrics | None, labels: np.ndarray | None = None,
                    probs: np.ndarray | None = None) -> None:
        """Show ``clinical`` (None clears); ``labels``/``probs``: the report images' classes and calibrated
        probabilities, which the operating-point slider re-thresholds."""
        self.clinical = clinical
        for page in (self.roc_page, self.calibration_page):
            page.setEnabled(clinical is not None)
        if clinical is None:
            self.curves.set_curves({}, {})
            self.curves.show_marker(None, None)
            self.operating_point.clear()
            self.operating_point.hide()
            self.calibration.set_calibration({}, {})
            return
        blocks = clinical.to_dict()
        self.curves.set_curves(blocks["auc"], blocks["roc"])
        self.calibration.set_calibration(blocks["calibration"], blocks["conformal"])
        metrics = clinical.operating_point
        if clinical.binary and metrics is not None and labels is not None and probs is not None:
            point = metrics.point
            column = clinical.class_names.index(point.positive_class)
            rule = {"youden": "maximum Youden's J", "target_sensitivity": "a sensitivity target of",
                    "target_specificity": "a specificity target of", "fixed": "hand"}.get(point.rule, point.rule)
            target = f" {100 * point.target:g} %" if point.target is not None else ""
            where = f"on {point.n} validation images " if point.n else ""
            chosen = (f"Chosen {where}by {rule}{target}: threshold {point.threshold:.3f}. "
                      "Move the slider to see the trade-off on these images.")
            self.operating_point.rule.show_rule(point.rule, point.target)
            self.operating_point.set_data(point, np.asarray(labels) == column, np.asarray(probs)[:, column], chosen)
            self.operating_point.show()
        else:
            self.operating_point.clear()
            self.operating_point.hide()
            self.curves.show_marker(None, None)
            if clinical.binary:
                reason = blocks.get("operating_point", {}).get("reason")
                self.curves.hover_label.setText(f"No operating point: {reason}." if reason else "")

    def _on_operating_point_changed(self, m: OperatingPointMetrics) -> None:
        sens, spec = m.sensitivity.value, m.specificity.value
        self.curves.show_marker(None if spec is None else 1 - spec, sens)
        self.operating_point_changed.emit(m)


__all__ = ["CalibrationTab", "ClinicalPages", "CurvesTab", "OperatingPointPanel"]
