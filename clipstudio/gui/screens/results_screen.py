"""The Results screen: browse zero-shot predictions, the confusion matrix and per-class metrics;
for a training run, compare it with its starting model and pick a WiSE-FT mix.

The grid and the metrics always show one ``ZeroShotResult`` (``last_result``) of the report images
(``split_policy.report_part``: test, else val, else all, as ``clipstudio zeroshot`` uses): the
current model's, the run's fine-tuned model's, or a WiSE-FT mix of the run's two. The Metrics tab is
``widgets.metrics_panel``; the tabs that compare models are ``results_comparisons``; CSV and report
file choices are ``results_export``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.data.metadata import MetadataRead, metadata_columns, read_metadata
from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.clinical_scoring import (
    ClinicalScoring,
    calibrated_predictions,
    run_operating_point,
    score_clinical,
    with_operating_point,
    with_subgroups,
)
from clipstudio.engine.evaluation.report import check_report_path, render_report
from clipstudio.engine.evaluation.split_policy import report_part
from clipstudio.engine.evaluation.subgroups import Grouping
from clipstudio.engine.evaluation.zero_shot import score_dataset
from clipstudio.engine.plural import plural
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import is_run_folder
from clipstudio.engine.storage.atomic import atomic_write_text
from clipstudio.gui.errors import show_error
from clipstudio.gui.help import TERMS
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.screens.results_comparisons import BeforeAfterTab, ModelComparison, WiseSweeps
from clipstudio.gui.screens.results_export import (
    ask_csv_path,
    ask_metadata_path,
    ask_report_path,
    predictions_csv,
)
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.clinical_view import ClinicalPages
from clipstudio.gui.widgets.metrics_panel import MetricsPanel, pct
from clipstudio.gui.widgets.missing_input import MissingInputBanner
from clipstudio.gui.widgets.model_pair import ModelPairView
from clipstudio.gui.widgets.prediction_grid import PredictionGrid
from clipstudio.gui.widgets.run_comparison import WiseCurve
from clipstudio.gui.widgets.subgroup_view import SubgroupView
from clipstudio.printing import write_report_file

CURRENT, RUN = "current", "run"
OPERATING_POINT_DEBOUNCE_MS = 150
SUBGROUPS_HINT = ("Type a pattern that picks each image's subgroup out of its path (a hospital, scanner or sex "
                  "in a folder or file name), or choose a metadata column, and press Show subgroups.")


class ResultsScreen(QWidget):
    title = "Results"
    icon_name = "results"

    evaluated = Signal(object)  # ZeroShotResult now in the grid
    compared = Signal(object)  # {"before": payload, "after": payload, "before_label", "after_label"}
    swept = Signal(list)  # wise_sweep rows
    models_compared = Signal(dict)  # the Compare tab: a_label, b_label, a, b (payloads), paired, part
    report_written = Signal(str)  # the report's path

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.jobs = ScreenJobs(self)
        self.last_result: Any = None
        self.shown_predictions: list[dict] = []  # what the grid shows (calibrated; at the operating point)
        self._run_models: dict[str, Any] = {}  # run folder -> fine-tuned model (loaded once)
        self._wise: Any = None  # WiseInterpolator of the selected run (used by one job at a time)
        self._wise_alpha_pending: float | None = None
        self._stale = True
        self._wise_timer = QTimer(self, singleShot=True, interval=250)
        self._wise_timer.timeout.connect(self._evaluate_wise)
        self._build()
        state.dataset_changed.connect(self._on_state_dataset_changed)
        state.dataset_changed.connect(self._on_state_inputs_changed)
        state.model_changed.connect(self._on_state_inputs_changed)
        state.prompts_changed.connect(self._on_state_inputs_changed)
        state.run_changed.connect(self._on_state_run_changed)
        self._on_state_dataset_changed(state.dataset)
        self._on_state_run_changed(state.run_dir)

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = MissingInputBanner(self.state, parent=self)
        self.source_combo = QComboBox()
        self.source_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # never cut off
        self.source_combo.currentIndexChanged.connect(self._on_source_combo_changed)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.clicked.connect(self._evaluate_pressed)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.report_button = QPushButton("Export report…")
        self.report_button.setToolTip("One self-contained HTML file (opens offline): data, split policy, model, "
                                      "every metric with its interval, ROC, calibration, example errors")
        self.report_button.clicked.connect(lambda: self.export_report())
        self.progress_label = QLabel()
        self.jobs.show_status_on(self.progress_label)
        self.split_label = QLabel()
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        top.addWidget(self.source_combo, 1)
        top.addWidget(self.evaluate_button)
        top.addWidget(self.progress_label, 1)
        top.addWidget(self.report_button)
        top.addWidget(self.export_button)

        self.grid = PredictionGrid(show_on_map=True)
        self.grid.show_on_map.requested.connect(self.state.request_show_on_map)
        self.misclassified_check = QCheckBox("Misclassified only")
        self.misclassified_check.toggled.connect(self._on_filters_changed)
        self.class_combo = QComboBox()
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_combo.currentIndexChanged.connect(self._on_filters_changed)
        self.cell_label = QLabel()
        self.clear_cell_button = QPushButton("Clear cell filter")
        self.clear_cell_button.clicked.connect(lambda: self.matrix.clear_selection())
        self.clear_cell_button.hide()
        self.count_label = QLabel()
        filters = QHBoxLayout()
        filters.addWidget(self.misclassified_check)
        filters.addWidget(QLabel("True class:"))
        filters.addWidget(self.class_combo)
        filters.addStretch(1)
        filters.addWidget(self.count_label)
        cell_row = QHBoxLayout()  # its own row, so a long class name can't squeeze the grid
        cell_row.addWidget(self.cell_label)
        cell_row.addWidget(self.clear_cell_button)
        cell_row.addStretch(1)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        lv.addLayout(filters)
        lv.addLayout(cell_row)
        lv.addWidget(self.grid, 1)

        self.metrics = MetricsPanel()
        # Its parts, by the names the slots below, the walkthrough and the tests use.
        self.accuracy_label, self.summary_label = self.metrics.accuracy_label, self.metrics.summary_label
        self.matrix, self.matrix_note = self.metrics.matrix, self.metrics.matrix_note
        self.metrics_table = self.metrics.metrics_table
        self.matrix.cell_selected.connect(self._on_matrix_cell_selected)

        self.before_after = BeforeAfterTab(self.state, self.jobs, self.progress_label)
        self.before_after.compare_requested.connect(self.compare_before_after)
        self.before_after.compared.connect(self.compared)
        self.compare_label, self.compare_table = self.before_after.compare_label, self.before_after.compare_table

        self.wise = WiseCurve()
        self.wise.alpha_changed.connect(self._on_wise_alpha_changed)
        self.alpha_slider = self.wise.slider
        self.wise.sweep_requested.connect(self._on_wise_sweep_requested)
        self.wise.choose_requested.connect(self._on_wise_choose_requested)
        self.wise_sweeps = WiseSweeps(self.state, self.jobs, self.wise, self.progress_label, self)
        self.wise_sweeps.swept.connect(self.swept)

        self.clinical_pages = ClinicalPages(self)
        self.clinical_pages.operating_point_changed.connect(self._on_operating_point_changed)
        self.clinical_pages.operating_point_rule_chosen.connect(self._on_operating_point_rule_chosen)
        self._chosen_rule: str | None = None  # the user's rule; None: the run's stored point, else Youden's J
        self.subgroups = SubgroupView()
        self.subgroups.grouping_submitted.connect(self.show_subgroups)
        self.subgroups.metadata_file_requested.connect(
            lambda: self.load_metadata(ask_metadata_path(self, self._dataset_folder())))
        self._metadata: MetadataRead | None = None  # the metadata file loaded for this dataset
        self._shown_grouping: Grouping | None = None  # the grouping the Subgroups tab shows; follows a new scoring
        self.model_pair = ModelPairView()
        self.comparison = ModelComparison(self.state, self.jobs, self.model_pair, self._run_models, self)
        self.comparison.compared.connect(self.models_compared)
        self._point_timer = QTimer(self)  # the grid follows the slider once it rests (10k tiles are not free)
        self._point_timer.setSingleShot(True)
        self._point_timer.setInterval(OPERATING_POINT_DEBOUNCE_MS)
        self._point_timer.timeout.connect(self._apply_operating_point)
        self._pending_point = None
        self.clinical: ClinicalScoring | None = None
        self._report_part = None  # the EvaluationPart the clinical scoring reports on
        self._report_source = ""  # the run folder it scored ("" = the current model)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.metrics, "Metrics")
        self.tabs.addTab(self.clinical_pages.roc_page, "ROC / PR")
        self.tabs.addTab(self.clinical_pages.calibration_page, "Calibration")
        self.tabs.addTab(self.subgroups, "Subgroups")
        self.tabs.addTab(self.before_after, "Before / after")
        self.tabs.addTab(self.wise, "WiSE-FT")
        self.tabs.addTab(self.model_pair, "Compare")
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.tabs.setTabToolTip(self.tabs.indexOf(self.before_after), TERMS["paired_comparison"].plain)
        self.tabs.setTabToolTip(self.tabs.indexOf(self.wise), TERMS["wise_ft"].plain)
        self._run_tabs = (self.before_after, self.wise)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.split_label)
        layout.addWidget(splitter, 1)
        self._show_result(None)

    # --- source selection ---------------------------------------------------------------------------

    def source(self) -> str:
        return self.source_combo.currentData() or CURRENT

    def _run_dir(self) -> str:
        return self.state.run_dir if self.source() == RUN else ""

    def _on_state_run_changed(self, run_dir: str) -> None:
        valid = bool(run_dir) and is_run_folder(run_dir)
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        self.source_combo.addItem("Current model", CURRENT)
        if valid:  # a new run is what the user wants to see: select it
            self.source_combo.addItem(f"Training run: {Path(run_dir).name} (best checkpoint)", RUN)
            self.source_combo.setItemData(1, run_dir, Qt.ItemDataRole.ToolTipRole)
            self.source_combo.setCurrentIndex(self.source_combo.findData(RUN))
        self.source_combo.blockSignals(False)
        self._wise = None
        self.wise_sweeps.rows = []
        self.wise.reset()
        self.compare_table.setRowCount(0)
        self._on_source_combo_changed()
        if valid and not self.jobs.busy("evaluate"):
            self.evaluate()  # a run that just finished is scored meanwhile, ready when the user comes here

    def _on_source_combo_changed(self, *_args) -> None:
        is_run = self.source() == RUN
        for page in self._run_tabs:
            self.tabs.setTabEnabled(self.tabs.indexOf(page), is_run)
        self.wise.reset()
        self._on_state_inputs_changed()

    def _on_state_inputs_changed(self, *_args) -> None:
        self._stale = True
        self.last_result = None
        self._show_result(None)
        if self.isVisible():
            self.evaluate()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale and not self.jobs.busy():
            self.evaluate()

    # --- evaluation -------------------------------------------------------------------------------

    def _ready(self) -> bool:
        needs_model = self.source() == CURRENT
        self.banner.needs_model = needs_model
        if not self.banner.refresh():
            return False
        if not self.state.dataset.is_classification:
            self.progress_label.setText("This dataset has no class labels; use the Retrieval screen.")
            return False
        return True

    def _evaluate_pressed(self) -> None:
        self.banner.needs_model = self.source() == CURRENT
        if self.banner.draw_attention():
            self.evaluate()

    def evaluate(self) -> None:
        """Score the selected model on the report images and fill the grid and the metrics."""
        if not self._ready():
            return
        self.jobs.cancel("evaluate")
        dataset, split_config, store = self.state.dataset, self.state.split_config(), self.state.embeddings
        run_dir, run_models = self._run_dir(), self._run_models
        model, prompts, chosen_rule = self.state.model, self.state.prompts, self._chosen_rule
        who = f"training run {Path(run_dir).name} (its own prompts)" if run_dir else "current model"

        def job(callback, should_stop):
            part = report_part(dataset, split_config)
            use_model, use_prompts = model, prompts
            if run_dir:
                from clipstudio.engine.models import load_run_model  # deferred: imports torch

                if run_dir not in run_models:
                    run_models[run_dir] = load_run_model(run_dir)
                use_model, use_prompts = run_models[run_dir], run_prompt_set(run_dir)
            # The user's rule, else a run's threshold chosen on its validation images (clipstudio eval stores
            # it), else Youden's J.
            point = chosen_rule or (run_operating_point(run_dir) if run_dir else None) or "youden"
            scoring = score_clinical(store, use_model, dataset, use_prompts, split_config, part,
                                     operating_point=point, callback=callback, should_stop=should_stop)
            return None if scoring.result.cancelled else (f"{who} on the {part.description}", scoring, part)

        self._stale = False
        self.split_label.setText(f"{who}: scoring…")
        self.progress_label.setText("Evaluating…")
        self.jobs.start(job, name="evaluate", succeeded=self._on_result_ready)
        self.summary_label.setText("Scoring the report images; the metrics appear here when done.")

    def _on_result_ready(self, outcome) -> None:
        if outcome is None:
            self.progress_label.setText("Cancelled.")
            return
        label, result, self._report_part = (*outcome, None) if len(outcome) == 2 else outcome
        self._report_source = self._run_dir() or ""
        self.clinical = None
        if isinstance(result, ClinicalScoring):
            self.clinical, result = result, result.result
        self.split_label.setText(label)
        self.last_result = result
        skipped = f"; {plural(len(result.problems), 'unreadable image')} skipped" if result.problems else ""
        self.progress_label.setText(f"{plural(result.n, 'image')}{skipped}.")
        self._show_result(result, self.clinical)
        if self.isVisible():  # the status bar said "scoring…" when the user came here
            self.state.post_status(self.status_text())
        self.evaluated.emit(result)
        if self.clinical is not None and self._shown_grouping is not None:
            self.show_subgroups(self._shown_grouping)  # the grouping stays; the figures follow the new scoring

    def _show_result(self, result, scoring: ClinicalScoring | None = None) -> None:
        """Fill the grid, matrix and metrics; with ``scoring``, probabilities are the calibrated ones and
        the ROC / PR and Calibration tabs are filled (a WiSE-FT mix has no such scoring: they clear)."""
        clinical = scoring.clinical if scoring is not None else None
        self._pending_point = None
        predictions, matrix = (result.predictions, result.confusion_matrix) if result is not None else ([], [])
        if clinical is not None and result.logits is not None:
            temperature = clinical.calibration.temperature
            point = clinical.operating_point.point if clinical.operating_point is not None else None
            predictions, matrix = calibrated_predictions(result, temperature, point, sets=clinical.conformal.sets)
            self.metrics.show_matrix_note(point)
            self.clinical_pages.set_scoring(clinical, result.labels, softmax(result.logits, temperature or 1.0))
        else:
            self.metrics.show_matrix_note(None)
            self.clinical_pages.set_scoring(None)
        if clinical is None or self._shown_grouping is None:
            self.subgroups.set_report(None)
            self.subgroups.set_status(SUBGROUPS_HINT if clinical is not None else
                                      "Press Evaluate: the subgroups are of the scored report images.")
        self.shown_predictions = predictions
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", None)
        self.metrics.show_result(result, matrix, clinical)
        self.export_button.setEnabled(result is not None)
        self.report_button.setEnabled(scoring is not None and scoring.clinical is not None)
        if result is None:
            self.class_combo.blockSignals(False)
            self.grid.set_predictions([])
            self._on_filters_changed()
            return
        for name in result.class_names:
            self.class_combo.addItem(name, name)
        self.class_combo.blockSignals(False)
        self.grid.set_predictions(predictions)
        self._on_filters_changed()

    # --- filters ----------------------------------------------------------------------------------

    def _on_filters_changed(self, *_args) -> None:
        self.grid.set_misclassified_only(self.misclassified_check.isChecked())
        self.grid.set_class_filter(self.class_combo.currentData())
        shown, total = self.grid.filter.rowCount(), self.grid.tile_model.rowCount()
        self.count_label.setText(f"Showing {shown} of {total} images" if total else "")
        self.grid.set_empty_text("No images match these filters." if total else "")

    def _on_matrix_cell_selected(self, row: int, col: int) -> None:
        names = self.last_result.class_names if self.last_result is not None else []
        if row < 0 or not names:
            self.grid.set_cell_filter(None, None)
            self.cell_label.setText("")
            self.clear_cell_button.hide()
        else:
            self.grid.set_cell_filter(names[row], names[col])
            self.cell_label.setText(f"Cell: true <b>{names[row]}</b> → predicted <b>{names[col]}</b>")
            self.clear_cell_button.show()
        self._on_filters_changed()

    # --- operating point (binary tasks) -------------------------------------------------------------

    def _on_operating_point_changed(self, metrics) -> None:
        self._pending_point = metrics
        self._point_timer.start()

    def _apply_operating_point(self) -> None:
        """The grid and the confusion matrix call images at the slider's threshold."""
        metrics, result, scoring = self._pending_point, self.last_result, self.clinical
        if metrics is None or result is None or scoring is None or scoring.clinical is None:
            return
        clinical = scoring.clinical
        predictions, matrix = calibrated_predictions(
            result, clinical.calibration.temperature, metrics.point, sets=clinical.conformal.sets
        )
        self.shown_predictions = predictions
        self.grid.set_predictions(predictions)
        self.matrix.set_matrix(result.class_names, matrix)
        self.metrics.show_matrix_note(metrics.point)
        self._on_matrix_cell_selected(-1, -1)

    def _on_operating_point_rule_chosen(self, rule: str) -> None:
        """Choose the threshold anew on the validation images by ``rule``; the slider, the figures, the grid
        and the matrix follow (instant: nothing is scored again)."""
        self._chosen_rule = rule
        scoring, result = self.clinical, self.last_result
        if scoring is None or scoring.clinical is None or not scoring.clinical.binary or result is None:
            return
        chosen = with_operating_point(scoring, rule)
        if chosen.clinical.operating_point is None:
            self.progress_label.setText(f"No threshold for that rule: {chosen.clinical.operating_point_reason}.")
            point = scoring.clinical.operating_point
            if point is not None:  # the box shows the rule the slider's threshold still comes from
                self.clinical_pages.operating_point.rule.show_rule(point.point.rule, point.point.target)
            return
        self.clinical = chosen
        temperature = chosen.clinical.calibration.temperature
        self.clinical_pages.set_scoring(chosen.clinical, result.labels, softmax(result.logits, temperature or 1.0))

    # --- export -----------------------------------------------------------------------------------

    def export_csv(self, path: str | None = None) -> bool:
        """Write every prediction of the shown result to a CSV file (atomically)."""
        if self.last_result is None:
            return False
        if path is None:
            path = ask_csv_path(self)
        if not path:
            return False
        try:
            atomic_write_text(path, predictions_csv(self.shown_predictions))
        except OSError as exc:
            show_error(self, f"Can't write {path}: {exc.strerror or exc}.")
            return False
        self.state.post_status(f"Saved {len(self.shown_predictions)} predictions to {path}")
        return True

    def export_report(self, path: str | None = None) -> bool:
        """Write the evaluation report of the shown scoring, in a worker (it embeds a few image thumbnails):
        one self-contained HTML file, or a PDF when the name ends in .pdf; returns whether a write was started."""
        scoring, part, dataset = self.clinical, self._report_part, self.state.dataset
        if scoring is None or scoring.clinical is None or part is None or dataset is None:
            return False
        if path is None:
            path = ask_report_path(self)
        if not path:
            return False
        try:
            check_report_path(path)
        except ClipStudioError as exc:
            show_error(self, str(exc))
            return False
        run_dir, health = self._report_source, self.state.health
        model_spec, prompts = self.state.model_spec, self.state.prompts
        subgroups = scoring.clinical.subgroups
        settings = {"subgroups by": subgroups.by if subgroups is not None else None,
                    "metadata file": str(self._metadata.source) if self._metadata is not None else None}

        def job(_callback, _should_stop):
            html = render_report(scoring, part, dataset, health=health, model_spec=None if run_dir else model_spec,
                                 prompts=None if run_dir else prompts, run_dir=run_dir or None, settings=settings)
            return str(write_report_file(path, html))

        self.progress_label.setText("Writing the report…")
        self.jobs.start(job, name="report", succeeded=self._on_report_written)
        return True

    def _on_report_written(self, path: str) -> None:
        self.progress_label.setText("")
        self.state.post_status(f"Saved the evaluation report to {path}")
        self.report_written.emit(path)

    # --- subgroups --------------------------------------------------------------------------------

    def show_subgroups(self, grouping: Grouping | str) -> None:
        """Figures per subgroup of the report images, each image's subgroup picked out of its path by a
        pattern or read from a metadata column; in a worker (a bootstrap per subgroup)."""
        grouping = Grouping(pattern=grouping) if isinstance(grouping, str) else grouping
        scoring, dataset = self.clinical, self.state.dataset
        if scoring is None or scoring.clinical is None or dataset is None:
            self.subgroups.set_status("Evaluate first: the subgroups are of the scored report images.")
            return
        self.jobs.cancel("subgroups")
        self._shown_grouping = grouping
        if scoring.clinical.subgroups is not None:  # the report must not keep another grouping's table
            scoring = self.clinical = replace(scoring, clinical=replace(scoring.clinical, subgroups=None))
        root = dataset.root
        samples = (self._metadata.dataset if self._metadata is not None else dataset).samples

        def job(_callback, _should_stop):
            return with_subgroups(scoring, grouping, root, samples=samples)

        self.subgroups.set_report(None)
        self.subgroups.set_status(f"Computing the figures of each subgroup by {grouping.by}…")
        self.jobs.start(job, name="subgroups", succeeded=self._on_subgroups_ready,
                        failed=lambda message, _details: self.subgroups.set_status(message))

    def _on_subgroups_ready(self, grouped: ClinicalScoring) -> None:
        current = self.clinical
        if current is None or current.clinical is None or grouped.result is not current.result:
            return  # scored again meanwhile: the new scoring computes its own
        # Kept on the shown scoring, so "Export report…" has the subgroup table.
        self.clinical = replace(current, clinical=replace(current.clinical, subgroups=grouped.clinical.subgroups))
        self.subgroups.set_report(grouped.clinical.subgroups)

    def load_metadata(self, path: str) -> None:
        """Read a metadata CSV for the dataset's images (in a worker); its columns join the Subgroups choice."""
        dataset = self.state.dataset
        if not path or dataset is None:
            return

        def job(_callback, _should_stop):
            return read_metadata(path, dataset)

        self.subgroups.set_status(f"Reading {path}…")
        self.jobs.start(job, name="metadata", succeeded=self._on_metadata_read,
                        failed=lambda message, _details: self.subgroups.set_status(message))

    def _dataset_folder(self) -> str:
        """The open dataset's folder (an annotation file's folder), or "" when none is open."""
        dataset = self.state.dataset
        if dataset is None:
            return ""
        source = Path(dataset.source or dataset.root)
        return str(source if source.is_dir() else source.parent)

    def _on_metadata_read(self, read: MetadataRead) -> None:
        if self.state.dataset is None or read.dataset.source != self.state.dataset.source:
            return  # another dataset was opened meanwhile
        self._metadata = read
        self.subgroups.set_columns(metadata_columns(read.dataset), choose=read.columns[0] if read.columns else None)
        self.subgroups.set_status(read.summary())

    def _on_state_dataset_changed(self, dataset) -> None:
        self._metadata, self._shown_grouping = None, None
        self.subgroups.set_columns(metadata_columns(dataset) if dataset is not None else [])

    # --- compare any two models --------------------------------------------------------------------

    def _on_tabs_current_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.model_pair:
            self.comparison.refresh_choices()

    def compare_models(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        """Score models ``a`` and ``b`` (``(kind, run folder)``) on the report images and compare them paired."""
        self.comparison.compare(a, b)

    # --- before / after ---------------------------------------------------------------------------

    def compare_before_after(self) -> None:
        """Score the run's starting model and its fine-tuned model on the report images."""
        self.before_after.compare(self._run_dir())

    # --- WiSE-FT ----------------------------------------------------------------------------------

    def _on_wise_alpha_changed(self, _alpha: float) -> None:
        if self._run_dir():
            self._wise_timer.start()  # slider drags come in bursts: evaluate where it settles

    def _evaluate_wise(self) -> None:
        """Fill the grid with the WiSE-FT model at the slider's alpha (one such job at a time)."""
        run_dir = self._run_dir()
        if not run_dir or not self._ready():
            return
        if self.jobs.busy("wise"):
            self._wise_alpha_pending = self.wise.alpha()
            self.jobs.cancel("wise")
            return
        self._wise_alpha_pending = None
        alpha, dataset, split_config = self.wise.alpha(), self.state.dataset, self.state.split_config()
        store, screen = self.state.embeddings, self

        def job(callback, should_stop):
            from clipstudio.engine.evaluation.wise import WiseInterpolator  # deferred: imports torch

            part = report_part(dataset, split_config)
            if screen._wise is None or str(screen._wise.run_dir) != str(Path(run_dir)):
                screen._wise = WiseInterpolator(run_dir)
            result = score_dataset(store, screen._wise.model_at(alpha), part.dataset, run_prompt_set(run_dir),
                                   callback=callback, should_stop=should_stop)
            label = f"WiSE-FT α = {alpha:.1f} of {Path(run_dir).name} on the {part.description}"
            return None if result.cancelled else (label, result)

        self.jobs.cancel("evaluate")
        self.split_label.setText(f"WiSE-FT α = {alpha:.1f} of {Path(run_dir).name}: scoring…")
        self.progress_label.setText(f"Evaluating α = {alpha:.1f}…")
        self.jobs.start(job, name="wise", succeeded=self._on_result_ready, finished=self._on_wise_finished)

    def _on_wise_finished(self) -> None:
        if self._wise_alpha_pending is not None:
            self._evaluate_wise()

    def _on_wise_sweep_requested(self) -> None:
        run_dir = self._run_dir()
        if run_dir and self._ready():
            self.wise_sweeps.sweep(run_dir)

    def _on_wise_choose_requested(self) -> None:
        run_dir = self._run_dir()
        if run_dir and self._ready():
            self.wise_sweeps.choose(run_dir)

    # --- screen contract -------------------------------------------------------------------------

    def status_text(self) -> str:
        """What the screen shows, for the status bar when the user comes here ("" when nothing yet)."""
        if not self.banner.isHidden():
            return self.banner.label.text().removesuffix(", or:").removesuffix(":")
        shown = self.split_label.text()
        if not shown:
            return ""
        if self.last_result is not None:
            shown += f": accuracy {pct(self.last_result.accuracy)}"
        return f"Results: {shown}"

    def busy(self) -> bool:
        return self.jobs.busy() or self.banner.busy()

    def shutdown(self) -> None:
        self._wise_timer.stop()
        self._wise_alpha_pending = None
        self.jobs.shutdown()
        self.banner.shutdown()
        self.grid.shutdown()
