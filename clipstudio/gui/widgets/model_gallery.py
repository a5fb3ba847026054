"""The medical model gallery on the Model screen: known medical CLIPs with what they were trained on,
their architecture, licence and whether a local copy exists (offline: what is missing). Clicking one
picks it as the Hugging Face model to load; while a load downloads it, its row shows how far it got."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from clipstudio.engine.model_catalogue import KNOWN_MODELS, NOTHING_CACHED, KnownModel

COLUMNS = ("Model", "Trained on", "Licence")
CHECKING, CACHED, NOT_CACHED = "checking the cache…", "✓ cached: works offline", "downloads on first load"
OFFLINE_NOT_CACHED = "offline and not downloaded: needs internet once"
MB = 1024**2
# "(microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract: config.json, vocab.txt)": a repo id and file
# names in a status line wrap a 165 px cell to 7 lines; the cell leaves them to the row's tooltip.
_DETAIL = re.compile(r" \([^()]*\)")


def status_line(missing: list[str], offline: bool) -> str:
    """The local-copy line for a model the cache lacks ``missing`` of (plain words from the engine)."""
    if not missing:
        return CACHED
    if missing == [NOTHING_CACHED]:
        return OFFLINE_NOT_CACHED if offline else NOT_CACHED
    parts = " and ".join(missing)
    return f"offline: missing {parts}" if offline else f"missing {parts}: fetched on load"


def download_line(done: int, total: int) -> str:
    """The local-copy line while a load downloads the model."""
    if total <= 0:
        return "downloading…"
    return f"downloading… {100 * done // total} % ({done / MB:.0f} of {total / MB:.0f} MB)"


class ModelGallery(QTableWidget):
    """One row per known medical model; ``chosen`` carries the Hub id of the clicked row."""

    chosen = Signal(str)

    def __init__(self, models: tuple[KnownModel, ...] = KNOWN_MODELS, parent: QWidget | None = None) -> None:
        super().__init__(len(models), len(COLUMNS), parent)
        self.models = models
        self._status = [CHECKING] * len(models)
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
                self.setItem(row, col, QTableWidgetItem(text))
            self._set_tooltip(row, CHECKING)
        self.resizeRowsToContents()
        self.cellClicked.connect(self._on_cell_clicked)

    def set_cached(self, statuses: dict[str, str]) -> None:
        """Show each model's local-copy line (``check_cache``'s result); a model not in it is still being checked.

        The cell shows the line without its bracketed details (which repo, which files); the tooltip has it whole.
        """
        for row, model in enumerate(self.models):
            self._status[row] = statuses.get(model.repo_id, CHECKING)
            self.item(row, 0).setText(self._model_cell(model, _DETAIL.sub("", self._status[row])))
            self._set_tooltip(row, self._status[row])
        self.resizeRowsToContents()

    def _set_tooltip(self, row: int, status: str) -> None:
        """The Hub id, the whole local-copy line and the model card's terms, on every cell of ``row``."""
        model = self.models[row]
        tip = f"{model.repo_id}\n{status}\n{model.images}\nLicence: {model.licence}. {model.note}"
        for col in range(self.columnCount()):
            self.item(row, col).setToolTip(tip)

    def set_downloading(self, repo_id: str, done: int, total: int) -> None:
        """Show a running download's progress in the row of ``repo_id`` (nothing when it is not listed)."""
        for row, model in enumerate(self.models):
            if model.repo_id == repo_id:
                # the percentage only: the bytes would not fit the column (the load status line has them)
                status = f"downloading… {100 * done // total} %" if total > 0 else "downloading…"
                self._status[row] = status
                self.item(row, 0).setText(self._model_cell(model, status))

    @staticmethod
    def _model_cell(model: KnownModel, status: str) -> str:
        """Name, architecture and whether a local copy exists, one per line."""
        return f"{model.name}\n{model.architecture}\n{status}"

    def status(self, row: int) -> str:
        """The local-copy line of ``row``, whole (the cell may show it without its details)."""
        return self._status[row]

    def select_repo(self, repo_id: str) -> None:
        """Highlight the row of ``repo_id`` (none when it is not in the list)."""
        rows = [row for row, model in enumerate(self.models) if model.repo_id == repo_id]
        if rows:
            self.selectRow(rows[0])
        else:
            self.clearSelection()

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        self.chosen.emit(self.models[row].repo_id)


def check_cache(models: tuple[KnownModel, ...] = KNOWN_MODELS) -> dict[str, str]:
    """Each known model's local-copy line: cached, or what is missing (run it in a worker: it imports torch)."""
    # deferred: the models package imports torch
    from clipstudio.engine.models.hub import hub_offline, missing_from_cache

    offline = hub_offline()
    return {model.repo_id: status_line(missing_from_cache(model.repo_id), offline) for model in models}


__all__ = ["COLUMNS", "ModelGallery", "check_cache", "download_line", "status_line"]

