"""The Results screen's Metrics tab: accuracy, a summary with intervals and clinical figures, the confusion
matrix and the per-class table of one scored result."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.gui.help import explain_links, terms_tooltip
from clipstudio.gui.score_text import chance_text, class_counts, interval_text
from clipstudio.gui.widgets.confusion_matrix import ConfusionMatrixView

SUMMARY_TERMS = {  # the summary's jargon, by the names it uses
    "balanced_accuracy": "balanced accuracy",
    "confidence_interval": "95% CI",
    "auc": "AUC",
    "calibration": "ECE",
    "prediction_sets": "prediction sets",
}
EMPTY_SUMMARY = "Press Evaluate to score the model on the report images."


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _with_ci(value: float | None, ci: list[float] | None, n: int) -> str:
    return pct(value) + interval_text(ci, n)


def _clinical_lines(clinical) -> list[str]:
    """AUC, calibration and prediction-set lines for the metrics summary (empty without clinical metrics)."""
    if clinical is None:
        return []
    blocks = clinical.to_dict()
    auc = blocks["auc"]["macro"]
    lines = []
    if auc.get("value") is not None:
        ci = auc.get("ci95")
        what = "AUC" if clinical.binary else "macro AUC (one class vs the rest)"
        lines.append(f"{what} {auc['value']:.3f}" + (f"  (95% CI {ci[0]:.3f} – {ci[1]:.3f})" if ci else ""))
    calibration = blocks["calibration"]
    if calibration.get("ece") is not None:
        line = f"calibration error (ECE) {pct(calibration['ece'])}"
        if calibration.get("ece_after") is not None:
            line += f" → {pct(calibration['ece_after'])} after temperature scaling (T = {calibration['temperature']:.2f})"
        lines.append(line)
    conformal = blocks["conformal"]
    if conformal.get("coverage") is not None:
        lines.append(f"prediction sets: {pct(conformal['coverage'])} coverage (target "
                     f"{pct(conformal['coverage_target'])}), {conformal['mean_set_size']:.2f} classes on average")
    return lines


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    # Numbers take what they need; the class name gets the rest (never a clipped "las...").
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(60)
    return table


class MetricsPanel(QWidget):
    """Accuracy in large type, the summary lines, a note on the operating point, the matrix and the table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.accuracy_label = QLabel()  # empty until something is scored
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 2.2)
        big.setBold(True)
        self.accuracy_label.setFont(big)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setToolTip(terms_tooltip(list(SUMMARY_TERMS)))
        self.matrix = ConfusionMatrixView()
        self.metrics_table = _table(["Class", "Precision", "Recall", "F1", "Support"])
        mv = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.accuracy_label)
        row.addWidget(self.summary_label, 1)
        mv.addLayout(row)
        mv.addWidget(explain_links(SUMMARY_TERMS))
        self.matrix_note = QLabel()  # binary tasks: the grid and the matrix call images at the operating point
        self.matrix_note.setObjectName("hint")
        self.matrix_note.setWordWrap(True)
        self.matrix_note.hide()
        mv.addWidget(self.matrix_note)
        mv.addWidget(self.matrix, 3)
        mv.addWidget(self.metrics_table, 2)

    def show_result(self, result, matrix, clinical=None) -> None:
        """Fill the figures of ``result`` (None: empty) with confusion matrix ``matrix``; ``clinical`` adds the
        AUC, calibration and prediction-set lines."""
        self.matrix.clear_selection()
        self.metrics_table.setRowCount(0)
        if result is None:
            self.matrix.clear()
            self.accuracy_label.setText("")
            self.summary_label.setText(EMPTY_SUMMARY)
            return
        self.matrix.set_matrix(result.class_names, matrix)
        self.accuracy_label.setText(pct(result.accuracy))
        lines = [f"accuracy {_with_ci(result.accuracy, result.ci95.get('accuracy'), result.n)}",
                 f"balanced accuracy {_with_ci(result.balanced_accuracy, result.ci95.get('balanced_accuracy'), result.n)}"]
        if result.top5_accuracy is not None:
            lines.append(f"top-5 accuracy {pct(result.top5_accuracy)}")
        lines += _clinical_lines(clinical)
        lines.append(chance_text(class_counts(result)))
        self.summary_label.setText("\n".join(lines))
        for name, m in result.per_class.items():
            row = self.metrics_table.rowCount()
            self.metrics_table.insertRow(row)
            cells = [name, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"])]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.metrics_table.setItem(row, col, item)

    def show_matrix_note(self, point) -> None:
        """Say that the grid and the matrix follow the operating point, while the figures above don't."""
        if point is None:
            self.matrix_note.hide()
            return
        self.matrix_note.setText(
            f"Grid and confusion matrix: an image is called '{point.positive_class}' when its probability is "
            f"≥ {point.threshold:.3f} (the operating point; move it on the ROC / PR tab). The figures above "
            "score the most probable class."
        )
        self.matrix_note.show()
