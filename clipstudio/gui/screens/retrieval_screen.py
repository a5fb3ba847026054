"""The Retrieval screen: find images by a text description or by an example image.

The dataset's images are encoded once per model (the app's ``EmbeddingStore`` keeps the
embeddings), so every further query only encodes its own text or image. The ranking is the
engine's (``evaluation.search``), the same as ``clipstudio search``. Any model can be searched with, not only the
app's current one: the built-in model, the current or a recent training run, or a model folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.errors import ImageError
from clipstudio.engine.evaluation.search import SearchHit, search_image, search_text
from clipstudio.engine.runs.layout import is_run_folder, list_runs
from clipstudio.gui.help import TERMS, explain
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.settings import AppSettings
from clipstudio.gui.state import AppState
from clipstudio.gui.thumbnails import decode_thumbnail, to_qimage
from clipstudio.gui.widgets.missing_input import NO_DATASET, MissingInputBanner
from clipstudio.gui.widgets.prediction_grid import Tile, TileGrid

CURRENT, BUILTIN, RUN, CHOOSE = "current", "builtin", "run", "choose"
MAX_RECENT_RUNS = 8  # in the model picker, besides the current run
QUERY_PREVIEW_SIZE = 68  # px, inside the 72 px dashed frame
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom"}


class RetrievalScreen(QWidget):
    title = "Retrieval"
    icon_name = "retrieval"

    searched = Signal(list)  # image SearchHits of a text query
    image_searched = Signal(list, list)  # image hits, caption hits of an image query

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.jobs = ScreenJobs(self)
        self.models: dict[str, Any] = {}  # spec -> loaded model (not the current one)
        self.image_hits: list[SearchHit] = []
        self.caption_hits: list[SearchHit] = []
        self._query_text = ""
        self.setAcceptDrops(True)
        self._build()
        state.run_changed.connect(lambda _run: self._fill_model_combo())
        state.model_changed.connect(lambda _model: self._fill_model_combo())
        state.dataset_changed.connect(self._on_state_dataset_changed)
        self._fill_model_combo()

    def _build(self) -> None:
        self.banner = MissingInputBanner(self.state, parent=self)
        self.model_combo = QComboBox()
        self.model_combo.activated.connect(self._on_model_combo_activated)
        self.model_combo.currentIndexChanged.connect(lambda _i: self._update_banner())
        self.progress_label = QLabel()
        self.jobs.show_status_on(self.progress_label, progress_suffix=" (only once per model)")
        row_model = QHBoxLayout()
        row_model.addWidget(QLabel("Search with:"))
        row_model.addWidget(self.model_combo, 1)
        row_model.addWidget(self.progress_label, 1)

        self.query_edit = QLineEdit()
        self.query_edit.setPlaceholderText("Describe what you are looking for, e.g. “eosinophil with red granules”")
        self.query_edit.setClearButtonEnabled(True)
        self.query_edit.returnPressed.connect(lambda: self.search_text())
        search_button = QPushButton("Search")
        search_button.clicked.connect(lambda: self.search_text())
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 200)
        self.k_spin.setValue(12)
        self.k_spin.setPrefix("top ")
        self.k_spin.setToolTip("How many of the closest images (and captions) to show.")
        row_text = QHBoxLayout()
        row_text.addWidget(self.query_edit, 1)
        row_text.addWidget(search_button)
        row_text.addWidget(self.k_spin)

        self.query_preview = QLabel()
        self.query_preview.setFixedSize(72, 72)
        self.query_preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_preview.setStyleSheet("border: 2px dashed #9aa6b2; border-radius: 6px; color: #6b7785;")
        self.query_preview.setText("drop\nimage")
        choose = QPushButton("Choose image…")
        choose.clicked.connect(lambda: self.choose_image())
        self.query_path_label = QLabel("…or drop an image anywhere on this screen to find similar images.")
        self.query_path_label.setWordWrap(True)
        row_image = QHBoxLayout()
        row_image.addWidget(self.query_preview)
        row_image.addWidget(choose)
        row_image.addWidget(self.query_path_label, 1)

        self.grid = TileGrid(show_on_map=True)
        self.grid.show_on_map.requested.connect(self.state.request_show_on_map)
        self.result_label = QLabel()
        self.captions_table = QTableWidget(0, 3)
        self.captions_table.setHorizontalHeaderLabels(["Similarity", "Caption", "Image"])
        self.captions_table.horizontalHeaderItem(0).setToolTip(TERMS["similarity"].plain)
        self.captions_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.captions_table.verticalHeader().setVisible(False)
        self.captions_table.setWordWrap(True)
        self.captions_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.captions_box = QWidget()
        cv = QVBoxLayout(self.captions_box)
        cv.setContentsMargins(4, 0, 0, 0)
        cv.addWidget(QLabel("<b>Nearest captions</b>"))
        cv.addWidget(self.captions_table, 1)
        self.captions_box.hide()
        grid_box = QWidget()
        gv = QVBoxLayout(grid_box)
        gv.setContentsMargins(0, 0, 4, 0)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result_label, 1)
        self.similarity_link = explain("similarity", self.result_label, text="What is the similarity score?")
        self.similarity_link.hide()  # until there are scores to explain
        result_row.addWidget(self.similarity_link)
        gv.addLayout(result_row)
        gv.addWidget(self.grid, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(grid_box)
        splitter.addWidget(self.captions_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(row_model)
        layout.addLayout(row_text)
        layout.addLayout(row_image)
        layout.addWidget(splitter, 1)

    # --- the model to search with -----------------------------------------------------------------

    def _fill_model_combo(self) -> None:
        chosen = self.model_combo.currentData()
        folders = [self.model_combo.itemData(i) for i in range(self.model_combo.count())
                   if str(self.model_combo.itemData(i)).startswith("folder:")]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        current = f"Current model ({self.state.model_spec})" if self.state.model is not None else "Current model (none loaded)"
        self.model_combo.addItem(current, CURRENT)
        if self.state.model_spec != "builtin" or self.state.model is None:
            self.model_combo.addItem("Built-in model", BUILTIN)
        run = self.state.run_dir
        if run and is_run_folder(run):
            self._add_run_item(f"Training run: {Path(run).name}", run)
        for recent in recent_runs(exclude=run):
            self._add_run_item(f"Recent run: {Path(recent).name}", recent)
        for spec in folders:
            self.model_combo.addItem(f"Folder: {Path(spec[7:]).name}", spec)
        self.model_combo.addItem("Choose folder…", CHOOSE)
        index = self.model_combo.findData(chosen)
        self.model_combo.setCurrentIndex(max(0, index))
        self.model_combo.blockSignals(False)
        self._update_banner()

    def _add_run_item(self, text: str, run: str) -> None:
        self.model_combo.addItem(text, f"{RUN}:{run}")
        self.model_combo.setItemData(self.model_combo.count() - 1, run, Qt.ItemDataRole.ToolTipRole)

    def add_model_folder(self, folder: str) -> None:
        """Offer a model folder (CLIP Studio, Hugging Face CLIP, or a run) in the picker and select it."""
        spec = f"folder:{folder}"
        if self.model_combo.findData(spec) < 0:
            self.model_combo.insertItem(self.model_combo.count() - 1, f"Folder: {Path(folder).name}", spec)
        self.model_combo.setCurrentIndex(self.model_combo.findData(spec))

    def _on_model_combo_activated(self, _index: int) -> None:
        if self.model_combo.currentData() != CHOOSE:
            return
        settings = AppSettings()
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", settings.dialog_folder())
        if folder:
            settings.remember_dialog_path(folder)
            self.add_model_folder(folder)
        else:
            self.model_combo.setCurrentIndex(0)

    def _update_banner(self) -> None:
        self.banner.needs_model = self.model_combo.currentData() in (CURRENT, None)
        self.banner.refresh()

    def _model_source(self) -> tuple[Any, str]:
        """(the current model or None, the spec to load when it is None)."""
        choice = self.model_combo.currentData() or CURRENT
        if choice == CURRENT:
            return self.state.model, ""
        if choice == BUILTIN:
            return self.models.get("builtin"), "builtin"
        spec = choice.split(":", 1)[1]
        return self.models.get(spec), spec

    # --- queries ------------------------------------------------------------------------------------

    def _start_query(self, name: str, search, succeeded) -> None:
        """Run ``search(store, model, dataset, callback=, should_stop=)`` in a worker, with the model loaded."""
        self._update_banner()
        dataset = self.state.dataset
        if dataset is None:
            self.progress_label.setText(NO_DATASET)
            return
        if not len(dataset):
            self.progress_label.setText("This dataset has no images to search.")
            return
        model, spec = self._model_source()
        if model is None and not spec:
            self.banner.draw_attention()  # it offers the built-in model
            return
        self.jobs.cancel()
        store, models = self.state.embeddings, self.models

        def job(callback, should_stop):
            use = model
            if use is None:
                from clipstudio.engine.models import load_model  # deferred: imports torch

                use = models[spec] = load_model(spec)
            found = search(store, use, dataset, callback=callback, should_stop=should_stop)
            return None if should_stop() else found

        self.progress_label.setText("Loading the model…" if model is None else "Searching…")
        self.jobs.start(job, name=name, succeeded=succeeded)

    def search_text(self, query: str | None = None) -> None:
        """The top-k images for a text description."""
        query = (self.query_edit.text() if query is None else query).strip()
        if not query:
            self.progress_label.setText("Type a description first.")
            return
        self.query_edit.setText(query)
        top = self.k_spin.value()
        self._query_text = f"Images for “{query}”"
        self._start_query("text search", lambda *a, **k: search_text(*a, query, top=top, **k),
                          self._on_text_search_succeeded)

    def search_image(self, path: str) -> None:
        """The top-k images, and captions when the dataset has them, nearest to an example image."""
        path = str(path)
        self._show_query_image(path)
        top = self.k_spin.value()
        self._query_text = f"Images like {Path(path).name}"
        self._start_query("image search", lambda *a, **k: search_image(*a, path, top=top, **k),
                          self._on_image_search_succeeded)

    def choose_image(self) -> None:
        settings = AppSettings()
        path, _ = QFileDialog.getOpenFileName(self, "Choose a query image", settings.dialog_folder(),
                                              "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm);;All files (*)")
        if path:
            settings.remember_dialog_path(path)
            self.search_image(path)

    def _show_query_image(self, path: str) -> None:
        self.query_path_label.setText(f"Query image: {path}")
        try:
            decoded = decode_thumbnail(path, QUERY_PREVIEW_SIZE)  # DICOM too, upright
        except ImageError:
            self.query_preview.setText("query")
            return
        self.query_preview.setPixmap(QPixmap.fromImage(to_qimage(decoded)))

    def _on_text_search_succeeded(self, hits) -> None:
        if hits is None:
            return
        self._show_hits(hits, [])
        self.searched.emit(hits)

    def _on_image_search_succeeded(self, result) -> None:
        if result is None:
            return
        image_hits, caption_hits = result
        self._show_hits(image_hits, caption_hits)
        self.image_searched.emit(image_hits, caption_hits)

    def _show_hits(self, image_hits: list[SearchHit], caption_hits: list[SearchHit]) -> None:
        self.image_hits, self.caption_hits = list(image_hits), list(caption_hits)
        self._fill_model_combo()  # a freshly loaded model may now be worth naming
        self.progress_label.setText("")
        self.result_label.setText(f"<b>{self._query_text}</b> — top {len(image_hits)} by cosine similarity")
        self.similarity_link.show()
        tiles = []
        class_of = self._class_of_paths()
        for n, hit in enumerate(image_hits, 1):
            label = class_of.get(hit.path) or (hit.captions[0] if hit.captions else "") or Path(hit.path).name
            tip = f"{hit.path}\nsimilarity {hit.score:.3f}"
            tip += f"\nclass: {class_of[hit.path]}" if hit.path in class_of else ""
            tip += "\n\n" + "\n".join(hit.captions) if hit.captions else ""
            details = [f"Rank: {n} of {len(image_hits)}", f"Similarity: {hit.score:.3f}"]
            details += [f"Caption: {caption}" for caption in hit.captions]
            tiles.append(Tile(path=hit.path, lines=[f"#{n}   {hit.score:.3f}", label], tooltip=tip,
                              true=class_of.get(hit.path), details=details))
        self.grid.set_tiles(tiles)
        table = self.captions_table
        table.setRowCount(len(caption_hits))
        for r, hit in enumerate(caption_hits):
            for c, text in enumerate([f"{hit.score:.3f}", hit.captions[0], Path(hit.path).name]):
                item = QTableWidgetItem(text)
                item.setToolTip(hit.path if c == 2 else text)
                table.setItem(r, c, item)
        table.resizeRowsToContents()
        self.captions_box.setVisible(bool(caption_hits))

    def _class_of_paths(self) -> dict[str, str]:
        dataset = self.state.dataset
        if dataset is None or not dataset.class_names:
            return {}
        return {str(s.path): dataset.class_names[s.label] for s in dataset.samples if s.label is not None}

    def _on_state_dataset_changed(self, _dataset) -> None:
        self.jobs.cancel()
        self.grid.set_tiles([])
        self.captions_table.setRowCount(0)
        self.captions_box.hide()
        self.result_label.setText("")
        self.similarity_link.hide()
        self._update_banner()

    # --- drag and drop ------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_image(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_image(event)
        if path is not None:
            event.acceptProposedAction()
            self.search_image(path)

    # --- screen contract ----------------------------------------------------------------------------

    def busy(self) -> bool:
        return self.jobs.busy() or self.banner.busy()

    def shutdown(self) -> None:
        self.jobs.shutdown()
        self.banner.shutdown()
        self.grid.shutdown()


def recent_runs(exclude: str = "") -> list[str]:
    """Run folders to offer: those the app opened or trained lately, then the newest in the runs folder."""
    opened = [p for p in AppSettings().recent_runs() if is_run_folder(p)]
    found = dict.fromkeys(os.path.abspath(p) for p in [*opened, *list_runs()])
    if exclude:
        found.pop(os.path.abspath(exclude), None)
    return list(found)[:MAX_RECENT_RUNS]


def _dropped_image(event) -> str | None:
    mime = event.mimeData()
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in _IMAGE_SUFFIXES:
            return url.toLocalFile()
    return None
