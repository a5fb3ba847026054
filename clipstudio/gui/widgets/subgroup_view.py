"""The Subgroups view: the report images grouped by a pattern on their paths, with each group's figures.

The user types a pattern (a regular expression whose first capture group names the subgroup, the
same kind the Splits tab uses for patients) and presses Show; the screen computes
``engine.evaluation.subgroups.SubgroupReport`` in a worker and hands it to ``set_report``. A
subgroup whose interval lies wholly below the figure for all images is flagged: its row is tinted
and its last column says on what.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.evaluation.bootstrap import Estimate
from clipstudio.engine.evaluation.subgroups import SubgroupMetrics, SubgroupReport

HEADERS = ["Subgroup", "Images", "Accuracy", "Balanced accuracy", "Worse on"]
HEADER_TIPS = ["", "", "With its 95 % interval in brackets", "The mean of the per-class accuracies, with its 95 % "
               "interval in brackets", "Clearly worse on: the figures whose whole interval lies below the one for all images"]
FLAGGED_BACKGROUND = QColor("#fde2e1")
FLAGGED_TEXT = QColor("#a11b14")
_METRIC_WORDS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_auc": "AUC"}
NOTE = (
    "Each figure comes with the range it probably lies in (95 % interval) given the subgroup's own images. "
    "A row is marked <b style='color:#a11b14'>clearly worse</b> when even the top of that range is below "
    "the figure for all images together: unlikely to be chance. Small subgroups have wide ranges and are "
    "rarely marked; that does not show they are fine, only that there are too few images to tell."
)
PATTERN_TIP = (
    "A pattern searched in each image's path below the dataset folder, e.g. 'site2/normal/img_01.png'. "
    "The part in brackets names the subgroup: '^(site\\d+)/' groups by the first folder, "
    "'_(male|female)_' by a word in the file name. Images the pattern does not match form one "
    "subgroup of their own, '(no match)'."
)


def estimate_text(e: Estimate) -> str:
    """'87.0 % (80.1 – 92.3)', or 'undefined' and why, or the figure alone when it has no interval."""
    if e.value is None:
        return f"undefined: {e.reason}" if e.reason else "undefined"
    text = f"{100 * e.value:.1f} %"
    return text + (f"  ({100 * e.ci95[0]:.1f} – {100 * e.ci95[1]:.1f})" if e.ci95 else "")


class SubgroupView(QWidget):
    """A pattern field with a Show button over a table of subgroups; ``pattern_submitted`` asks for one."""

    pattern_submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText(r"e.g. ^(site\d+)/  (the part in brackets names the subgroup)")
        self.pattern_edit.setToolTip(PATTERN_TIP)
        self.pattern_edit.returnPressed.connect(self._submit)
        self.show_button = QPushButton("Show subgroups")
        self.show_button.setToolTip(PATTERN_TIP)
        self.show_button.clicked.connect(self._submit)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # group names come from file paths
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        for col, tip in enumerate(HEADER_TIPS):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # the figures are never cut
        header.setStretchLastSection(True)
        self.note = QLabel(NOTE)
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Group pattern"))
        row.addWidget(self.pattern_edit, 1)
        row.addWidget(self.show_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.report: SubgroupReport | None = None

    def pattern(self) -> str:
        return self.pattern_edit.text().strip()

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_report(self, report: SubgroupReport | None) -> None:
        """Show ``report`` (None empties the table): all images first, then each subgroup."""
        self.report = report
        self.table.setRowCount(0)
        if report is None:
            return
        flagged = [g.group for g in report.groups if g.flagged]
        self.set_status(
            f"{len(report.groups)} subgroups of {report.n} images"
            + (f"; clearly worse than all images together: {', '.join(flagged)}." if flagged
               else "; none is clearly worse than all images together.")
        )
        self._add_row(report.overall, "All images", bold=True)
        for group in report.groups:
            self._add_row(group, group.group)

    def flagged_rows(self) -> list[str]:
        """The subgroup names whose rows are marked, as the table shows them."""
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())
                if self.table.item(r, 4).text()]

    def _add_row(self, g: SubgroupMetrics, name: str, *, bold: bool = False) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        worse = ", ".join(_METRIC_WORDS.get(m, m) for m in g.flagged)
        cells = [name, str(g.n), estimate_text(g.accuracy), estimate_text(g.balanced_accuracy),
                 f"⚠ {worse}" if worse else ""]
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if col in (1, 2, 3):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if col in (2, 3):
                estimate = g.accuracy if col == 2 else g.balanced_accuracy
                item.setToolTip(f"n = {estimate.n}" + (f"; {estimate.reason}" if estimate.reason else ""))
            if g.flagged:
                item.setBackground(FLAGGED_BACKGROUND)
                item.setForeground(FLAGGED_TEXT)
            if bold or g.flagged:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(row, col, item)

    def _submit(self) -> None:
        if self.pattern():
            self.pattern_submitted.emit(self.pattern())
        else:
            self.set_status("Type a pattern first: the part in brackets names each image's subgroup.")
            self.pattern_edit.setFocus()


__all__ = ["SubgroupView", "estimate_text"]
