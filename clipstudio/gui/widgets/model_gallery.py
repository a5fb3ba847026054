"""The medical model gallery on the Model screen: known medical CLIPs with what they were trained on,
their architecture, licence and whether a local copy exists. Clicking one picks it as the Hugging
Face model to load."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from clipstudio.engine.model_catalogue import KNOWN_MODELS, KnownModel

COLUMNS = ("Model", "Trained on", "Licence")
CHECKING, CACHED, NOT_CACHED = "checking the cache…", "✓ cached: works offline", "downloads on first load"


class ModelGallery(QTableWidget):
    """One row per known medical model; ``chosen`` carries the Hub id of the clicked row."""

    chosen = Signal(str)

    def __init__(self, models: tuple[KnownModel, ...] = KNOWN_MODELS, parent: QWidget | None = None) -> None:
        super().__init__(len(models), len(COLUMNS), parent)
        self.models = models
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(True)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 165), (2, 75)):
            self.setColumnWidth(col, width)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for row, model in enumerate(models):
            cells = (self._model_cell(model, CHECKING), model.images, model.licence)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{model.repo_id}\n{model.images}\nLicence: {model.licence}. {model.note}")
                self.setItem(row, col, item)
        self.resizeRowsToContents()
        self.cellClicked.connect(self._on_cell_clicked)

    def set_cached(self, cached: dict[str, bool]) -> None:
        """Fill the "Local copy" column: ``cached[repo_id]`` True when the HF cache holds the model."""
        for row, model in enumerate(self.models):
            known = cached.get(model.repo_id)
            status = CHECKING if known is None else CACHED if known else NOT_CACHED
            self.item(row, 0).setText(self._model_cell(model, status))
        self.resizeRowsToContents()

    @staticmethod
    def _model_cell(model: KnownModel, status: str) -> str:
        """Name, architecture and whether a local copy exists, one per line."""
        return f"{model.name}\n{model.architecture}\n{status}"

    def status(self, row: int) -> str:
        """The local-copy line of ``row``."""
        return self.item(row, 0).text().splitlines()[-1]

    def select_repo(self, repo_id: str) -> None:
        """Highlight the row of ``repo_id`` (none when it is not in the list)."""
        rows = [row for row, model in enumerate(self.models) if model.repo_id == repo_id]
        if rows:
            self.selectRow(rows[0])
        else:
            self.clearSelection()

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        self.chosen.emit(self.models[row].repo_id)


def check_cache(models: tuple[KnownModel, ...] = KNOWN_MODELS) -> dict[str, bool]:
    """Which known models the Hugging Face cache holds (run it in a worker: it imports the models package)."""
    from clipstudio.engine.models.hub import cached_hub_file  # deferred: the models package imports torch

    found = {}
    for model in models:
        try:
            found[model.repo_id] = cached_hub_file(model.repo_id, model.config_file) is not None
        except Exception:  # noqa: BLE001 - an odd cache layout: treat as not cached, never fail the screen
            found[model.repo_id] = False
    return found


__all__ = ["COLUMNS", "ModelGallery", "check_cache"]

