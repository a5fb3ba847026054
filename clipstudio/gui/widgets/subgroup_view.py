"""The Subgroups view: the report images grouped by a pattern on their paths or by a metadata column,
with each group's figures.

The user picks how to group: "Pattern on the path" (a regular expression whose first capture group
names the subgroup, the same kind the Splits tab uses for patients), or "Metadata column" (a column
of the dataset's annotation file, or of a metadata CSV loaded with "Metadata file…" for class
folders), and presses Show; the screen computes ``engine.evaluation.subgroups.SubgroupReport`` in a
worker and hands it to ``set_report``. A subgroup whose interval lies wholly below the figure for
all images is flagged: its row is tinted and its last column says on what.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.evaluation.bootstrap import Estimate
from clipstudio.engine.evaluation.subgroups import NO_VALUE, Grouping, SubgroupMetrics, SubgroupReport

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
COLUMN_TIP = (
    "A column of the dataset's annotation file (sex, site, scanner, the patient column, ...), or of a "
    f"metadata file loaded for class folders. Images without a value form one subgroup of their own, '{NO_VALUE}'."
)
METADATA_FILE_TIP = (
    "A CSV with an image column (image, file_name, path, ...: the path below the dataset folder or below the "
    "CSV's folder, or the bare file name) and any other columns, e.g.\n"
    "image,sex,site\nnormal/img_001.png,F,site1"
)
NO_COLUMNS = "(none: load a metadata file)"


def estimate_text(e: Estimate) -> str:
    """'87.0 % (80.1 – 92.3)', or 'undefined' and why, or the figure alone when it has no interval."""
    if e.value is None:
        return f"undefined: {e.reason}" if e.reason else "undefined"
    text = f"{100 * e.value:.1f} %"
    return text + (f"  ({100 * e.ci95[0]:.1f} – {100 * e.ci95[1]:.1f})" if e.ci95 else "")


class SubgroupView(QWidget):
    """A choice of grouping (pattern on the path, or metadata column) with a Show button over a table
    of subgroups; ``grouping_submitted`` asks for a ``Grouping``, ``metadata_file_requested`` for a file."""

    grouping_submitted = Signal(object)  # Grouping
    metadata_file_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pattern_radio = QRadioButton("Pattern on the path")
        self.pattern_radio.setToolTip(PATTERN_TIP)
        self.column_radio = QRadioButton("Metadata column")
        self.column_radio.setToolTip(COLUMN_TIP)
        self.pattern_radio.setChecked(True)
        self._mode = QButtonGroup(self)
        self._mode.addButton(self.pattern_radio)
        self._mode.addButton(self.column_radio)
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText(r"e.g. ^(site\d+)/  (the part in brackets names the subgroup)")
        self.pattern_edit.setToolTip(PATTERN_TIP)
        self.pattern_edit.returnPressed.connect(self._submit)
        self.pattern_edit.textEdited.connect(lambda _text: self.pattern_radio.setChecked(True))
        self.column_combo = QComboBox()
        self.column_combo.setToolTip(COLUMN_TIP)
        # Narrow enough for the Results screen's right half at the default window size; the list opens wide.
        self.column_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.column_combo.setMinimumContentsLength(12)
        self.column_combo.activated.connect(lambda _index: self.column_radio.setChecked(True))
        self.metadata_button = QPushButton("Metadata file…")
        self.metadata_button.setToolTip(METADATA_FILE_TIP)
        self.metadata_button.clicked.connect(self.metadata_file_requested)
        self.show_button = QPushButton("Show subgroups")
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
        choice = QGridLayout()
        choice.addWidget(self.pattern_radio, 0, 0)
        choice.addWidget(self.pattern_edit, 0, 1, 1, 2)
        choice.addWidget(self.column_radio, 1, 0)
        choice.addWidget(self.column_combo, 1, 1)
        choice.addWidget(self.metadata_button, 1, 2)
        # Show on a row of its own: beside the choices it squeezed the radio labels off the screen's right
        # half at the default window width (seen in a real window).
        choice.addWidget(self.show_button, 2, 2)
        choice.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(choice)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.report: SubgroupReport | None = None
        self.set_columns([])

    def pattern(self) -> str:
        return self.pattern_edit.text().strip()

    def column(self) -> str:
        """The metadata column chosen ("" when the dataset has none)."""
        return self.column_combo.currentData() or ""

    def grouping(self) -> Grouping | None:
        """The grouping chosen, or None when its field is empty."""
        if self.column_radio.isChecked():
            return Grouping(column=self.column()) if self.column() else None
        return Grouping(pattern=self.pattern()) if self.pattern() else None

    def set_columns(self, columns: list[str], *, choose: str | None = None) -> None:
        """Offer ``columns`` (the loaded dataset's metadata columns); ``choose`` one, else keep the current one."""
        keep = choose or self.column()
        self.column_combo.clear()
        for name in columns:
            self.column_combo.addItem(name, name)
        if not columns:
            self.column_combo.addItem(NO_COLUMNS, None)
        self.column_combo.setEnabled(bool(columns))
        index = self.column_combo.findData(keep) if keep else -1
        self.column_combo.setCurrentIndex(max(index, 0))
        if choose and index >= 0:
            self.column_radio.setChecked(True)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_report(self, report: SubgroupReport | None) -> None:
        """Show ``report`` (None empties the table): all images first, then each subgroup."""
        self.report = report
        self.table.setRowCount(0)
        if report is None:
            return
        flagged = [g.group for g in report.groups if g.flagged]
        by = f" by {report.by}" if report.by else ""
        self.set_status(
            f"{len(report.groups)} subgroups of {report.n} images{by}"
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
        grouping = self.grouping()
        if grouping is not None:
            self.grouping_submitted.emit(grouping)
        elif self.column_radio.isChecked():
            self.set_status("This dataset has no metadata columns: load a metadata file (a CSV with an image "
                            "column and, say, sex or site) with Metadata file….")
        else:
            self.set_status("Type a pattern first: the part in brackets names each image's subgroup.")
            self.pattern_edit.setFocus()


__all__ = ["SubgroupView", "estimate_text"]
