"""The user's corrections to the open dataset: a one-line summary and a dialog to undo them.

The Data screen shows ``CorrectionsBar`` ("3 corrections applied · Review…") when the open dataset
has corrections (or its corrections file can't be read); "Review…" opens ``CorrectionsDialog``,
which lists every correction, removes the chosen ones or all, and exports the cleaned list. The
corrections file lives in the app's data folder (``engine.data.corrections``); the dataset folder
is never written to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.data import Dataset
from clipstudio.engine.data.corrections import (
    Correction,
    corrections_file,
    export_cleaned_list,
    read_corrections,
    remove_corrections,
)
from clipstudio.engine.errors import ClipStudioError
from clipstudio.gui.errors import show_error


def summary_text(dataset: Dataset) -> str:
    """"3 corrections applied" (or why none could be), as the Data screen shows it."""
    if dataset.corrections_warning:
        return f"<span style='color:#b26a00'>Your corrections were not applied: {_escape(dataset.corrections_warning)}</span>"
    n = dataset.corrections_applied
    return f"<b>{n} correction{'s' if n != 1 else ''} applied</b> (your changes, kept outside the dataset folder)"


def export_cleaned_list_dialog(parent: QWidget, dataset: Dataset, dataset_path: str) -> Path | None:
    """Ask where to save the cleaned list (CSV of path and label) and write it; the file or None."""
    start = str(Path.home() / f"{Path(dataset_path).name or 'dataset'}-cleaned.csv")
    target, _ = QFileDialog.getSaveFileName(parent, "Export cleaned list", start, "CSV files (*.csv)")
    if not target:
        return None
    try:
        return export_cleaned_list(dataset, target)
    except OSError as exc:
        show_error(parent, f"{target}: couldn't write the cleaned list ({exc.strerror or exc}).", "")
        return None


class CorrectionsBar(QWidget):
    """"N corrections applied" with a button to review and undo them (hidden when there are none)."""

    review_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.review_button = QPushButton("Review / undo…")
        self.review_button.setToolTip("See each correction, undo some or all, or export the cleaned list.")
        self.review_button.clicked.connect(self.review_requested)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.review_button)
        self.hide()

    def set_dataset(self, dataset: Dataset | None) -> None:
        if dataset is None or not (dataset.corrections_applied or dataset.corrections_warning):
            self.hide()
            return
        self.label.setText(summary_text(dataset))
        self.show()


class CorrectionsDialog(QDialog):
    """Every correction of a dataset, with "Undo selected", "Undo all" and "Export cleaned list…"."""

    corrections_changed = Signal()  # some were undone: the dataset needs reading again (then set_dataset)

    def __init__(self, dataset_path: str, dataset: Dataset, parent: QWidget | None = None,
                 *, export: Callable[[QWidget, Dataset, str], Path | None] = export_cleaned_list_dialog) -> None:
        super().__init__(parent)
        self.setWindowTitle("Corrections")
        self.resize(760, 420)
        self._dataset_path = dataset_path
        self._dataset = dataset
        self._export = export
        self._corrections: list[Correction] = []

        intro = QLabel(
            "Images you left out or gave another class. They are kept in "
            f"<code>{_escape(str(corrections_file(dataset_path)))}</code>; the dataset folder is not changed."
        )
        intro.setWordWrap(True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Image", "Change", "Folder"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_table_item_selection_changed)

        self.undo_button = QPushButton("Undo selected")
        self.undo_button.clicked.connect(self._on_undo_button_clicked)
        self.undo_all_button = QPushButton("Undo all")
        self.undo_all_button.clicked.connect(self._on_undo_all_button_clicked)
        self.export_button = QPushButton("Export cleaned list…")
        self.export_button.setToolTip("Save the dataset as you corrected it: a CSV of image path and class.")
        self.export_button.clicked.connect(self._on_export_button_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.undo_all_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(close)
        self._reload()

    def corrections(self) -> list[Correction]:
        return list(self._corrections)

    def set_dataset(self, dataset: Dataset) -> None:
        """The dataset read again after an undo: what "Export cleaned list…" writes."""
        self._dataset = dataset
        self.export_button.setEnabled(True)

    def _reload(self) -> None:
        try:
            self._corrections = read_corrections(self._dataset_path)
        except ClipStudioError as exc:
            self._corrections = []
            self.table.setRowCount(0)
            show_error(self, str(exc), "")
        self.table.setRowCount(len(self._corrections))
        for row, c in enumerate(self._corrections):
            path = Path(c.path)
            for col, text in enumerate((path.name, c.describe(), str(path.parent))):
                item = QTableWidgetItem(text)
                item.setToolTip(c.path)
                self.table.setItem(row, col, item)
        self.undo_all_button.setEnabled(bool(self._corrections))
        self._on_table_item_selection_changed()

    def _selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self._corrections[r].path for r in rows]

    def _on_table_item_selection_changed(self) -> None:
        self.undo_button.setEnabled(bool(self._selected_paths()))

    def _on_undo_button_clicked(self) -> None:
        self._remove(self._selected_paths())

    def _on_undo_all_button_clicked(self) -> None:
        self._remove(None)

    def _remove(self, paths: list[str] | None) -> None:
        try:
            remove_corrections(self._dataset_path, paths)
        except (ClipStudioError, OSError) as exc:
            show_error(self, f"Couldn't change the corrections: {exc}", "")
            return
        self._reload()
        self.export_button.setEnabled(False)  # until the dataset is read again without them
        self.corrections_changed.emit()

    def _on_export_button_clicked(self) -> None:
        self._export(self, self._dataset, self._dataset_path)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
