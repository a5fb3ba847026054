"""The Explore screen: see the whole dataset as a map, find likely label mistakes, near-duplicates,
outliers and the hardest training images, and correct the dataset without touching its folder.

"Analyse" runs one background job over the app's cached image embeddings (the engine's
``explore`` functions): the neighbour graph, the 2-D map, the out-of-fold label-issue ranking and
the outlier scores; the near-duplicate groups follow from the graph at once, so the threshold
slider needs no new job. Marking images (leave out, relabel) writes the dataset's corrections
file in the app's data folder (``engine.data.corrections``); the Data screen then reads the
dataset again with them, and shows how many are applied.

"Show on the map" in another screen's image grid (``AppState.show_on_map_requested``) brings this
screen forward with that image chosen and centred on the map; before there is a map, it says so,
offers Analyse, and shows the image once the analysis is done.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.data import Dataset
from clipstudio.engine.data.corrections import (
    EXCLUDE,
    RELABEL,
    Correction,
    add_corrections,
    read_corrections,
    remove_corrections,
)
from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.explore import (
    DEFAULT_DUPLICATE_THRESHOLD,
    DuplicateGroup,
    SamePicture,
    TrainingLosses,
    find_duplicates,
    training_losses,
)
from clipstudio.engine.plural import plural
from clipstudio.gui.errors import show_error
from clipstudio.gui.help import explain_links
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.screens.explore_analysis import COLOUR_BY, Analysis, analysis_job, colour_groups
from clipstudio.gui.state import AppState
from clipstudio.gui.thumbnails import ThumbnailLoader
from clipstudio.gui.widgets.corrections_view import export_cleaned_list_dialog
from clipstudio.gui.widgets.embedding_map import EmbeddingMap
from clipstudio.gui.widgets.explore_lists import LIST_THUMB_SIZE, ImageRow, ImageTable, MarkBar
from clipstudio.gui.widgets.missing_input import MissingInputBanner
from clipstudio.gui.widgets.thumbnail_grid import ThumbnailGrid, ThumbnailItem

LIST_LIMIT = 500  # rows shown in the label-mistake and outlier lists (the most doubtful first)
MAX_DUPLICATE_GROUPS = 2000
THRESHOLD_DEBOUNCE_MS = 150
ANALYSE = "analyse"
SELECTION_TAB = "Selection"
SCREEN_KEY = "explore"  # this screen's key in gui.screens.SCREENS
LOSSES = "training losses"
DUPLICATES = "near-duplicates"


class ExploreScreen(QWidget):
    title = "Explore"
    icon_name = "explore"

    analysed = Signal()  # an analysis is shown
    losses_shown = Signal()  # the hardest training images are listed
    duplicates_shown = Signal()  # the near-duplicate groups are listed

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.jobs = ScreenJobs(self)
        self.analysis: Analysis | None = None
        self.losses: np.ndarray | None = None  # (N,) per map row, NaN where the run didn't train on it
        self.loss_predicted: dict[int, int] = {}
        self.changes: dict[str, Correction] = {}
        self._row_of: dict[str, int] = {}
        self._same_picture: SamePicture | None = None  # per analysis: keeps the thumbnails it has read
        self._duplicates_pending = False
        self._map_request: tuple[str, str] | None = None  # (dataset, image) to show once the map is made
        self._map_note = False  # the note is about a "Show on the map" request
        self._build()
        state.dataset_changed.connect(self._on_state_dataset_changed)
        state.show_on_map_requested.connect(self._on_state_show_on_map_requested)
        state.model_changed.connect(self._on_state_model_changed)
        state.run_changed.connect(lambda _run: self._update_buttons())
        self._update_buttons()

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = MissingInputBanner(self.state, parent=self)
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setToolTip("Place every image on the map and rank likely label mistakes, "
                                       "near-duplicates and outliers (image features are reused from the cache).")
        self.analyse_button.clicked.connect(lambda: self.analyse())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.jobs.cancel())
        self.progress_label = QLabel()
        self.jobs.show_status_on(self.progress_label)
        self.colour_combo = QComboBox()
        for key, words in COLOUR_BY:
            self.colour_combo.addItem(words, key)
        self.colour_combo.currentIndexChanged.connect(lambda _i: self._recolour())
        self.fit_button = QPushButton("Fit to window")
        self.fit_button.clicked.connect(lambda: self.map.fit())
        self.export_button = QPushButton("Export cleaned list…")
        self.export_button.setToolTip("Save the dataset with your corrections as a CSV of image path and class.")
        self.export_button.clicked.connect(self._on_export_button_clicked)
        top = QHBoxLayout()
        top.addWidget(self.analyse_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress_label, 1)
        top.addWidget(explain_links({"label_quality": "label quality", "near_duplicate": "near-duplicates",
                                     "outlier_score": "outlier score"}))
        top.addWidget(self.export_button)
        map_bar = QHBoxLayout()
        map_bar.addWidget(QLabel("Colour by"))
        map_bar.addWidget(self.colour_combo)
        map_bar.addStretch(1)
        map_bar.addWidget(self.fit_button)
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        self.note_label.linkActivated.connect(lambda _link: self.analyse())  # "Analyse now" (show_on_map)
        self.note_label.hide()

        self.list_loader = ThumbnailLoader(self, size=LIST_THUMB_SIZE)
        self.map = EmbeddingMap()
        self.map.rect_selected.connect(self._on_map_rect_selected)
        self.selection_grid = ThumbnailGrid()
        self.selection_grid.view.selectionModel().selectionChanged.connect(lambda *_a: self._on_chosen_changed())
        self.mistakes = ImageTable(
            ["Given label", "Suggested label", "Label quality"], self.list_loader,
            intro="Images whose label the model doubts most, each scored by a model that never saw it. "
                  "Low label quality: the label is doubtful; <span style='color:#b71c1c'>red</span>: another "
                  "class fits clearly better.")
        self.duplicates = ImageTable(
            ["Group", "Split", "Class", "Closest pair"], self.list_loader,
            intro="Images that look almost the same. <span style='color:#b71c1c'>Red</span> groups cross "
                  "splits: the same image would be trained on and tested on.")
        self.outliers = ImageTable(
            ["Class", "Split", "Outlier score"], self.list_loader,
            intro="Images far from every other image: off-protocol views, other stains, photos of screens.")
        self.hardest = ImageTable(
            ["Given label", "Run's prediction", "Loss"], self.list_loader,
            intro="The training images the latest run found hardest (highest loss).")
        for table in (self.mistakes, self.duplicates, self.outliers, self.hardest):
            table.selection_changed.connect(lambda _rows: self._on_chosen_changed())

        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(80, 100)
        self.threshold_slider.setValue(round(DEFAULT_DUPLICATE_THRESHOLD * 100))
        self.threshold_slider.valueChanged.connect(self._on_threshold_slider_value_changed)
        self.threshold_label = QLabel()
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(THRESHOLD_DEBOUNCE_MS)
        self._threshold_timer.timeout.connect(self._fill_duplicates)
        self.same_picture_box = QCheckBox("Same picture only")
        self.same_picture_box.setChecked(True)
        self.same_picture_box.setToolTip(
            "Keep only images whose pixels match too (re-saved, resized or re-compressed copies). Untick to "
            "also see images the model finds alike, such as other images of the same patient.")
        self.same_picture_box.toggled.connect(lambda _on: self._fill_duplicates())
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(QLabel("Similar at least"))
        threshold_row.addWidget(self.threshold_slider, 1)
        threshold_row.addWidget(self.threshold_label)
        threshold_row.addWidget(self.same_picture_box)
        duplicates_page = QWidget()
        dv = QVBoxLayout(duplicates_page)
        dv.setContentsMargins(0, 0, 0, 0)
        dv.addLayout(threshold_row)
        dv.addWidget(self.duplicates, 1)

        self.losses_button = QPushButton("Score the latest run's training images")
        self.losses_button.clicked.connect(lambda: self.score_training_losses())
        hardest_page = QWidget()
        hv = QVBoxLayout(hardest_page)
        hv.setContentsMargins(0, 0, 0, 0)
        hv.addWidget(self.losses_button, 0, Qt.AlignmentFlag.AlignLeft)
        hv.addWidget(self.hardest, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.selection_grid, SELECTION_TAB)
        self.tabs.addTab(self.mistakes, "Label mistakes")
        self.tabs.addTab(duplicates_page, "Duplicates")
        self.tabs.addTab(self.outliers, "Outliers")
        self.tabs.addTab(hardest_page, "Hardest in training")
        for page, tip in ((self.mistakes, "Likely label mistakes"), (duplicates_page, "Near-duplicates by content"),
                          (hardest_page, "The training images a run found hardest")):
            self.tabs.setTabToolTip(self.tabs.indexOf(page), tip)
        self.tabs.currentChanged.connect(lambda _i: self._on_chosen_changed())
        self.mark_bar = MarkBar()
        self.mark_bar.exclude_requested.connect(self._on_mark_bar_exclude_requested)
        self.mark_bar.relabel_requested.connect(self._on_mark_bar_relabel_requested)
        self.mark_bar.undo_requested.connect(self._on_mark_bar_undo_requested)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.tabs, 1)
        rv.addWidget(self.mark_bar)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        lv.addLayout(map_bar)
        lv.addWidget(self.map, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([620, 620])

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.note_label)
        layout.addWidget(splitter, 1)
        self._on_threshold_slider_value_changed(self.threshold_slider.value())

    # --- the screen contract ---------------------------------------------------------------------
    def busy(self) -> bool:
        return self.jobs.busy() or self.banner.busy()

    def shutdown(self) -> None:
        self.jobs.shutdown()
        self.banner.shutdown()
        self.map.shutdown()
        self.selection_grid.shutdown()
        self.list_loader.shutdown()

    # --- public ----------------------------------------------------------------------------------
    def analyse(self) -> None:
        """Analyse the open dataset with the current model, in the background."""
        if not self.banner.draw_attention() or self.jobs.busy(ANALYSE):
            return
        self.jobs.cancel(LOSSES)
        job = analysis_job(self.state.embeddings, self.state.model, self.state.dataset, self.state.dataset_path)
        self.progress_label.setText("Reading image features…")
        self.jobs.start(job, name=ANALYSE, succeeded=self._on_analysis_succeeded, finished=self._update_buttons)
        self._update_buttons()
        if self._map_request is not None and self._map_request[0] == self.state.dataset_path:
            self._note_map_request(self._map_request[1])

    def score_training_losses(self) -> None:
        """List the latest run's training images by their loss under the run's model, in the background."""
        if self.analysis is None or not self.state.run_dir or self.jobs.busy(LOSSES):
            return
        run_dir, dataset, store = self.state.run_dir, self.state.dataset, self.state.embeddings

        def job(callback, should_stop) -> tuple[Dataset, TrainingLosses | None]:
            return dataset, training_losses(run_dir, dataset, store, callback=callback, should_stop=should_stop)

        self.progress_label.setText("Scoring the run's training images…")
        self.jobs.start(job, name=LOSSES, succeeded=self._on_losses_succeeded, finished=self._update_buttons)
        self._update_buttons()

    def show_on_map(self, path: str) -> None:
        """Choose the image at ``path`` and centre the map on it; before there is a map, say so and show
        it once the open dataset is analysed."""
        name = Path(path).name
        if self.analysis is None or self.analysis.dataset_path != self.state.dataset_path:
            self._map_request = (self.state.dataset_path, path)
            self._note_map_request(path)
            if not self.jobs.busy(ANALYSE):
                self.analyse_button.setFocus()
            return
        self._map_request = None
        row = self._row_of.get(path, self._row_of.get(os.path.abspath(path)))
        if row is None:
            self._set_note(f"{name} is not on this map: it is not one of the images of the analysed dataset "
                           "(or it could not be read).")
            self._map_note = True
            return
        if self._map_note:
            self._set_note(self.analysis.issues_note)
        self._select_on_map([row], f"{name} shown on the map.")
        self.map.focus(row)

    def _note_map_request(self, path: str) -> None:
        name = Path(path).name
        if self.jobs.busy(ANALYSE):
            self._set_note(f"{name} will be shown on the map as soon as it is made.")
        else:
            self._set_note(f"There is no map of this dataset yet. <a href='{ANALYSE}'>Analyse now</a> to place "
                           f"every image on it; {html.escape(name)} will then be shown.")
        self._map_note = True

    def chosen_rows(self) -> list[int]:
        """The map rows of the images chosen in the current tab."""
        page = self.tabs.currentWidget()
        if page is self.selection_grid:
            grid = self.selection_grid
            picked = sorted({grid.proxy.mapToSource(i).row() for i in grid.view.selectionModel().selectedIndexes()})
            return [self._row_of[grid.model.item(r).path] for r in picked]
        table = self._table_of(page)
        return [r.row for r in table.selected()] if table is not None else []

    # --- worker results --------------------------------------------------------------------------
    def _on_analysis_succeeded(self, analysis: Analysis | None) -> None:
        if analysis is None or analysis.dataset_path != self.state.dataset_path:
            return
        self.analysis = analysis
        self.losses = None
        self.loss_predicted = {}
        self._row_of = {p: i for i, p in enumerate(analysis.emb.paths)}
        self._same_picture = SamePicture(analysis.emb.paths)
        self._load_changes()
        n = len(analysis.emb.paths)
        skipped = len(analysis.emb.problems)
        self.progress_label.setText(
            f"{plural(n, 'image')} analysed" + (f"; {skipped:,} unreadable left out" if skipped else "") + "."
        )
        self._set_note(analysis.issues_note)
        self.mark_bar.set_classes(analysis.class_names)
        self.map.set_points(analysis.xy, analysis.emb.paths, self._describe)
        self._recolour()
        self._fill_mistakes()
        self._fill_duplicates()
        self._fill_outliers()
        self.hardest.set_rows([])
        self.selection_grid.set_items([])
        self._update_buttons()
        if self._map_request is not None and self._map_request[0] == analysis.dataset_path:
            self.show_on_map(self._map_request[1])
        self.analysed.emit()

    def _on_losses_succeeded(self, result: tuple[Dataset, TrainingLosses | None]) -> None:
        dataset, losses = result
        if losses is None or self.analysis is None:
            return
        values = np.full(len(self.analysis.emb.paths), np.nan, dtype=np.float32)
        predicted: dict[int, int] = {}
        for pos, index in enumerate(losses.indices):
            row = self._row_of.get(str(dataset.samples[index].path))
            if row is not None:
                values[row] = losses.losses[pos]
                predicted[row] = int(losses.predicted[pos])
        self.losses, self.loss_predicted = values, predicted
        self.progress_label.setText(f"Scored {len(predicted):,} training images of the run ({losses.method}).")
        self._fill_hardest()
        self._update_buttons()
        if self.colour_combo.currentData() == "loss":
            self._recolour()
        self.losses_shown.emit()

    # --- lists -----------------------------------------------------------------------------------
    def _class(self, code: int) -> str:
        names = self.analysis.class_names if self.analysis else []
        return names[code] if 0 <= code < len(names) else ""

    def _image_row(self, row: int, cells: tuple[str, ...], **kwargs) -> ImageRow:
        emb = self.analysis.emb
        return ImageRow(row, emb.paths[row], cells, label=self._class(int(emb.labels[row])),
                        split=emb.splits[row], **kwargs)

    def _fill_mistakes(self) -> None:
        issues = self.analysis.issues
        if issues is None:
            self.mistakes.set_rows([], "")
            return
        scored = [int(r) for r in issues.order if np.isfinite(issues.label_quality[r])]
        rows = [
            self._image_row(r, (self._class(int(issues.given[r])), self._class(int(issues.suggested[r])),
                                f"{issues.label_quality[r]:.3f}"), alert=bool(issues.likely_mistake[r]))
            for r in scored[:LIST_LIMIT]
        ]
        n_likely = int(np.count_nonzero(issues.likely_mistake))
        self.mistakes.set_rows(rows, f"{plural(n_likely, 'likely mistake')} among {plural(len(scored), 'labelled image')}")

    def _fill_duplicates(self) -> None:
        """Find the near-duplicate groups at the slider's threshold, in the background (checking the
        pictures reads the candidate images once); a move of the slider meanwhile runs it again after."""
        analysis = self.analysis
        if analysis is None:
            return
        if self.jobs.busy(DUPLICATES):
            self._duplicates_pending = True
            return
        threshold = self.threshold_slider.value() / 100
        confirm = self._same_picture if self.same_picture_box.isChecked() else None

        def job(_callback, _should_stop):
            return analysis, find_duplicates(analysis.graph, analysis.emb.splits, threshold, confirm)

        self.duplicates.count_label.setText("Looking for near-duplicates…")
        self.jobs.start(job, name=DUPLICATES, succeeded=self._on_duplicates_succeeded,
                        finished=self._on_duplicates_finished)
        self._update_buttons()

    def _on_duplicates_succeeded(self, result: tuple[Analysis, list[DuplicateGroup]]) -> None:
        analysis, groups = result
        if analysis is not self.analysis:
            return
        rows = []
        for g, group in enumerate(groups[:MAX_DUPLICATE_GROUPS]):
            for r in group.rows:
                cells = (str(g + 1), analysis.emb.splits[r] or "—", self._class(int(analysis.emb.labels[r])),
                         f"{group.max_similarity:.3f}")
                rows.append(self._image_row(r, cells, alert=group.across_splits, banded=g % 2 == 1))
        across = sum(g.across_splits for g in groups)
        self.duplicates.set_rows(rows, f"{plural(len(groups), 'group')}, {across:,} across splits")
        self.duplicates_shown.emit()

    def _on_duplicates_finished(self) -> None:
        self._update_buttons()
        if self._duplicates_pending:
            self._duplicates_pending = False
            self._fill_duplicates()

    def _fill_outliers(self) -> None:
        scores = self.analysis.outliers
        order = np.argsort(-scores, kind="stable")[:LIST_LIMIT]
        emb = self.analysis.emb
        rows = [self._image_row(int(r), (self._class(int(emb.labels[r])), emb.splits[r] or "—",
                                         f"{scores[r]:.3f}")) for r in order]
        self.outliers.set_rows(rows, f"the {len(rows):,} most isolated of {len(scores):,} images")

    def _fill_hardest(self) -> None:
        values = self.losses
        scored = np.flatnonzero(np.isfinite(values))
        order = scored[np.argsort(-values[scored], kind="stable")][:LIST_LIMIT]
        emb = self.analysis.emb
        rows = [self._image_row(int(r), (self._class(int(emb.labels[r])), self._class(self.loss_predicted[int(r)]),
                                         f"{values[r]:.3f}")) for r in order]
        self.hardest.set_rows(rows, f"the {len(rows):,} hardest of {scored.size:,} training images")

    def _table_of(self, page: QWidget) -> ImageTable | None:
        for table in (self.mistakes, self.duplicates, self.outliers, self.hardest):
            if page is table or table.parent() is page:
                return table
        return None

    # --- map -------------------------------------------------------------------------------------
    def _recolour(self) -> None:
        if self.analysis is not None:
            self.map.set_groups(colour_groups(self.analysis, self.colour_combo.currentData(), self.losses))

    def _describe(self, row: int) -> str:
        a = self.analysis
        lines = [f"<b>{html.escape(Path(a.emb.paths[row]).name)}</b>"]
        label = self._class(int(a.emb.labels[row]))
        if label:
            lines.append(f"Class: {html.escape(label)}")
        if a.emb.splits[row]:
            lines.append(f"Split: {html.escape(a.emb.splits[row])}")
        if a.issues is not None and np.isfinite(a.issues.label_quality[row]):
            lines.append(f"Model's guess: {html.escape(self._class(int(a.issues.suggested[row])))} "
                         f"(label quality {a.issues.label_quality[row]:.2f})")
        change = self._change_text(a.emb.paths[row])
        if change:
            lines.append(f"<span style='color:#b26a00'>Your change: {html.escape(change)}</span>")
        return "<br>".join(lines)

    def _on_map_rect_selected(self, rows: np.ndarray) -> None:
        if self.analysis is not None:
            self._select_on_map(rows, f"{plural(len(rows), 'image')} selected on the map.")

    def _select_on_map(self, rows, message: str) -> None:
        """Open the map ``rows`` in the Selection tab, chosen (ringed on the map)."""
        a = self.analysis
        items = [ThumbnailItem(a.emb.paths[r], self._class(int(a.emb.labels[r])), a.emb.splits[r]) for r in rows]
        self.selection_grid.set_items(items, class_names=a.class_names,
                                      split_names=sorted({s for s in a.emb.splits if s}))
        self.selection_grid.view.selectAll()
        self.tabs.setCurrentWidget(self.selection_grid)
        self.tabs.setTabText(0, f"{SELECTION_TAB} ({len(items):,})")
        self.state.post_status(message)
        self._on_chosen_changed()

    # --- marking ---------------------------------------------------------------------------------
    def _on_chosen_changed(self) -> None:
        rows = self.chosen_rows() if self.analysis is not None else []
        self.map.set_marked(np.asarray(rows, dtype=np.int64))
        issues = self.analysis.issues if self.analysis is not None else None
        if rows and issues is not None and self.tabs.currentWidget() is self.mistakes:
            # Offer the class the model suggests for the first chosen image.
            self.mark_bar.class_combo.setCurrentText(self._class(int(issues.suggested[rows[0]])))
        paths = [self.analysis.emb.paths[r] for r in rows] if rows else []
        self.mark_bar.set_chosen(len(rows), has_changes=any(p in self.changes for p in paths))

    def _mark(self, corrections: list[Correction]) -> None:
        if not corrections:
            return
        try:
            add_corrections(self.analysis.dataset_path, corrections)
        except (ClipStudioError, OSError) as exc:
            show_error(self, f"Couldn't save your corrections: {exc}", "")
            return
        self._corrections_saved(f"{plural(len(corrections), 'image')} {corrections[0].describe()}.")

    def _on_mark_bar_exclude_requested(self) -> None:
        self._mark([Correction(self.analysis.emb.paths[r], EXCLUDE) for r in self.chosen_rows()])

    def _on_mark_bar_relabel_requested(self, label: str) -> None:
        paths = [self.analysis.emb.paths[r] for r in self.chosen_rows()]
        self._mark([Correction(p, RELABEL, label) for p in paths])

    def _on_mark_bar_undo_requested(self) -> None:
        paths = [self.analysis.emb.paths[r] for r in self.chosen_rows()]
        try:
            remove_corrections(self.analysis.dataset_path, paths)
        except (ClipStudioError, OSError) as exc:
            show_error(self, f"Couldn't change your corrections: {exc}", "")
            return
        self._corrections_saved(f"Your changes to {plural(len(paths), 'image')} undone.")

    def _corrections_saved(self, message: str) -> None:
        self._load_changes()
        self._on_chosen_changed()
        self.state.post_status(message)
        self.state.notify_corrections_changed()

    def _load_changes(self) -> None:
        """Read the corrections file into the lists' "Your change" column."""
        try:
            self.changes = {c.path: c for c in read_corrections(self.analysis.dataset_path)}
        except ClipStudioError as exc:
            self.changes = {}
            self._set_note(str(exc))
        for table in (self.mistakes, self.duplicates, self.outliers, self.hardest):
            table.model.set_change_of(self._change_text)

    def _change_text(self, path: str) -> str:
        found = self.changes.get(path)
        return found.describe() if found is not None else ""

    # --- state -----------------------------------------------------------------------------------
    def _on_state_dataset_changed(self, dataset: Dataset | None) -> None:
        if self.analysis is not None and dataset is not None and self.state.dataset_path == self.analysis.dataset_path:
            # The same dataset read again (after a correction): keep the analysis, show the changes.
            self._load_changes()
            self._on_chosen_changed()
            self._set_note("The map and lists show the dataset as analysed; your corrections are applied to "
                           "the dataset. Analyse again to rank it with them." if self.changes else "")
            self._update_buttons()
            return
        self.jobs.cancel()
        self._clear()

    def _on_state_show_on_map_requested(self, path: str) -> None:
        self.state.request_screen(SCREEN_KEY)
        self.show_on_map(path)

    def _on_state_model_changed(self, _model) -> None:
        if self.analysis is not None:
            self._set_note("The model changed since this analysis; press Analyse to use the new one.")
        self._update_buttons()

    def _clear(self) -> None:
        self.analysis = None
        self.losses = None
        self.loss_predicted = {}
        self.changes = {}
        self._row_of = {}
        self._same_picture = None
        self.map.clear()
        self.selection_grid.set_items([])
        self.tabs.setTabText(0, SELECTION_TAB)
        for table in (self.mistakes, self.duplicates, self.outliers, self.hardest):
            table.set_rows([])
        self.progress_label.setText("")
        self._set_note("")
        self._update_buttons()

    def _set_note(self, text: str) -> None:
        self._map_note = False
        self.note_label.setText(text)
        self.note_label.setVisible(bool(text))

    def _update_buttons(self) -> None:
        analysing = self.jobs.busy(ANALYSE)
        self.analyse_button.setEnabled(not analysing)
        self.cancel_button.setVisible(self.jobs.busy())
        has = self.analysis is not None
        self.losses_button.setEnabled(has and bool(self.state.run_dir) and not self.jobs.busy(LOSSES))
        self.losses_button.setToolTip(self.state.run_dir or "Train a model (or open a run) first.")
        self.export_button.setEnabled(self.state.dataset is not None)
        self.fit_button.setEnabled(has)
        self.colour_combo.setEnabled(has)
        issues = has and self.analysis.issues is not None
        model = self.colour_combo.model()
        for i, (key, _words) in enumerate(COLOUR_BY):
            available = has and (key not in ("guess", "agreement", "quality") or issues) and (
                key != "loss" or self.losses is not None)
            model.item(i).setEnabled(bool(available))

    # --- ui slots --------------------------------------------------------------------------------
    def _on_threshold_slider_value_changed(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        self._threshold_timer.start()

    def _on_export_button_clicked(self) -> None:
        if self.state.dataset is None:
            return
        saved = export_cleaned_list_dialog(self, self.state.dataset, self.state.dataset_path)
        if saved is not None:
            self.state.post_status(f"Cleaned list saved: {saved}")
