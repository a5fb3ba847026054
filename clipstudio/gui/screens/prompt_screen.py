"""The Prompts screen: write the texts that describe each class, score them, compare prompt sets.

Prompts are scored on validation images (``split_policy.selection_part``: never the test split),
and every accuracy is shown with the chance level of those images. Scoring reuses the app's
``EmbeddingStore``, which keeps the image embeddings and the text embeddings of the prompts scored,
so after the first evaluation an edit costs only the encoding of the edited texts. Whatever is in the editor (when valid) is the app's active prompt set
(``state.prompts``), which the Train screen uses. The editor's prompts and the saved sets are kept
per dataset (``engine.prompt_store``) and come back when that dataset is opened again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.evaluation.split_policy import selection_part
from clipstudio.engine.evaluation.zero_shot import compare_prompt_sets, own_classifier, score_dataset
from clipstudio.engine.prompt_store import DatasetPrompts, load_dataset_prompts, save_dataset_prompts
from clipstudio.engine.prompts import PLACEHOLDER, PromptSet
from clipstudio.gui.errors import show_error
from clipstudio.gui.help import TERMS, explain_links
from clipstudio.gui.score_text import (
    PART_WORDS,
    chance_text,
    class_counts,
    interval_text,
    percent,
    scored_text,
)
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.missing_input import MissingInputBanner
from clipstudio.gui.widgets.prompt_editor import PromptEditor, heading

_GOOD = QColor("#e3f4e8")
PRESS_EVALUATE = "Press Evaluate to score these prompts on the validation images."
SCORE_TERMS = {"confidence_interval": "95% CI", "balanced_accuracy": "balanced accuracy"}  # as the scores name them
COMPARISON_NOTE = ("Saved sets are scored on the same validation images; the best (highest balanced accuracy) "
                   "is highlighted.")


class PromptScreen(QWidget):
    title = "Prompts"
    icon_name = "prompts"

    evaluated = Signal(object)  # ZeroShotResult of the editor's prompts
    compared = Signal(list)  # compare_prompt_sets rows

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.jobs = ScreenJobs(self)
        self.saved_sets: dict[str, PromptSet] = {}
        self.comparison: list[dict] = []
        self.last_result: Any = None
        self._evaluate_again = False
        self._generation = 0  # bumped when the dataset or model changes: older jobs' results are dropped
        self._part_name = "carved-val"  # selection_part's name of the images last scored
        self._memory_path = ""  # the dataset whose prompts the editor and the saved sets hold
        self._memory_dirty = False  # they changed since they were last written
        self._publish_timer = QTimer(self, singleShot=True, interval=400)
        self._publish_timer.timeout.connect(self._on_publish_timer_timeout)
        self._build()
        state.dataset_changed.connect(self._on_state_dataset_changed)
        state.model_changed.connect(self._on_state_model_changed)
        state.prompts_changed.connect(self._on_state_prompts_changed)
        self.editor.set_class_names(self._class_names())
        self.editor.load_prompt_set(state.prompts)
        self._on_state_dataset_changed(state.dataset)

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = MissingInputBanner(self.state, parent=self)
        self.editor = PromptEditor()
        self.editor.edited.connect(self._on_editor_edited)
        self.editor.failed.connect(self._on_editor_failed)
        # Shortcuts to the editor's parts, for tests and the screenshot tool.
        self.templates_edit, self.class_table = self.editor.templates_edit, self.editor.class_table
        self.template_status = self.editor.template_status

        self.evaluate_button = QPushButton("Evaluate  (Ctrl+Enter)")
        self.evaluate_button.setToolTip("Zero-shot accuracy of these prompts on the validation images")
        self.evaluate_button.clicked.connect(self._evaluate_pressed)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setWhatsThis("Evaluate the prompts")
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self._evaluate_pressed)
        self.progress_label = QLabel()
        self.jobs.show_status_on(self.progress_label)
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        self.accuracy_label = QLabel()  # empty until something is scored
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 2.4)
        big.setBold(True)
        self.accuracy_label.setFont(big)
        self.ci_label = QLabel(PRESS_EVALUATE)
        self.balanced_label = QLabel()
        self.ci_label.setToolTip(TERMS["confidence_interval"].tooltip())
        self.balanced_label.setToolTip(TERMS["balanced_accuracy"].tooltip())
        self.chance_label = QLabel()
        self.chance_label.setWordWrap(True)
        self.chance_label.setObjectName("hint")
        self.recall_plot = pg.PlotWidget(background="w")
        self.recall_plot.setMenuEnabled(False)
        self.recall_plot.setMouseEnabled(x=False, y=False)
        self.recall_plot.hideButtons()
        self.recall_plot.setXRange(0, 1, padding=0.02)
        self.recall_plot.setLabel("bottom", "Recall (share of each class's images classified correctly)")
        self.recall_plot.setMinimumHeight(160)
        for axis in ("left", "bottom"):
            self.recall_plot.getAxis(axis).enableAutoSIPrefix(False)
            self.recall_plot.getAxis(axis).setTextPen("#222")
            self.recall_plot.getAxis(axis).setPen("#888")

        self.save_set_button = QPushButton("Save as set…")
        self.save_set_button.clicked.connect(lambda: self.save_as_set())
        self.use_set_button = QPushButton("Use this set")
        self.use_set_button.clicked.connect(self._on_use_set_clicked)
        remove_button = QPushButton("Remove")
        remove_button.clicked.connect(self._on_remove_set_clicked)
        self.comparison_table = QTableWidget(0, 3)
        self.comparison_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.comparison_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.comparison_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.comparison_table.verticalHeader().setVisible(False)
        self.comparison_table.doubleClicked.connect(self._on_use_set_clicked)
        self.comparison_note = QLabel(COMPARISON_NOTE)
        self.comparison_note.setWordWrap(True)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.evaluate_button)
        row.addWidget(self.progress_label, 1)
        rv.addLayout(row)
        rv.addWidget(self.split_label)
        row = QHBoxLayout()
        row.addWidget(self.accuracy_label)
        ci_box = QVBoxLayout()
        ci_box.addWidget(self.ci_label)
        ci_box.addWidget(self.balanced_label)
        row.addLayout(ci_box, 1)
        rv.addLayout(row)
        rv.addWidget(explain_links(SCORE_TERMS))
        rv.addWidget(self.chance_label)
        rv.addWidget(self.recall_plot, 1)
        row = QHBoxLayout()
        row.addWidget(heading("Prompt sets"), 1)
        for button in (self.save_set_button, self.use_set_button, remove_button):
            row.addWidget(button)
        rv.addLayout(row)
        rv.addWidget(self.comparison_table, 1)
        rv.addWidget(self.comparison_note)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.editor)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)

    # --- the editor's prompts -------------------------------------------------------------------------

    def current_prompt_set(self, name: str | None = None) -> PromptSet | None:
        """The editor's prompts, or None while a template lacks {class_name}."""
        return self.editor.prompt_set(name)

    def template_problems(self) -> list[str]:
        return self.editor.template_problems()

    def import_class_texts(self, path: str) -> bool:
        """Read a class-texts JSON file into the editor and make the result the active set."""
        if not self.editor.import_class_texts(path):
            return False
        self._publish_prompts()
        return True

    def export_class_texts(self, path: str) -> bool:
        if not self.editor.export_class_texts(path):
            return False
        self.state.post_status(f"Class texts saved to {path}")
        return True

    def _class_names(self) -> list[str]:
        dataset = self.state.dataset
        return list(dataset.class_names) if dataset is not None else []

    def _on_editor_edited(self) -> None:
        if self.last_result is not None:
            self.progress_label.setText("Prompts changed: re-scoring…" if self.template_problems() == []
                                        else "Prompts changed; fix the marked lines to re-score.")
        self._publish_timer.start()

    def _on_editor_failed(self, message: str) -> None:
        show_error(self, message)

    def _publish_prompts(self) -> None:
        """Make the editor's prompts the app's active set (the Train screen reads it)."""
        prompts = self.current_prompt_set()
        if prompts is not None and prompts != self.state.prompts:
            self.state.set_prompts(prompts)

    def _on_publish_timer_timeout(self) -> None:
        self._publish_prompts()
        self._keep_prompts()
        # Once the images are encoded, re-scoring only encodes the texts: do it as the user types.
        if self.last_result is not None and self.current_prompt_set() is not None:
            self.evaluate()

    def _on_state_prompts_changed(self, prompts: PromptSet) -> None:
        if prompts != self.current_prompt_set():
            self.editor.load_prompt_set(prompts)

    def _on_state_dataset_changed(self, _dataset) -> None:
        if self._publish_timer.isActive():  # an edit still waiting to be published belongs to the old dataset
            self._publish_timer.stop()
            self._publish_prompts()
            self._memory_dirty = True
        self._remember_prompts()
        self._forget_results()
        self.editor.set_class_names(self._class_names())
        previous, self._memory_path = self._memory_path, (
            self.state.dataset_path if self.state.dataset is not None else "")
        self._restore_prompts(keep_saved_sets=not previous)
        self._show_result(None)
        self._fill_comparison()
        if self.state.dataset is not None and not self.state.dataset.is_classification:
            self.editor.class_note.setText("This dataset has no class labels (2 or more classes), so prompts "
                                           "can't be scored on it.")

    def _on_state_model_changed(self, _model) -> None:
        self._forget_results()
        self._show_result(None)
        self._fill_comparison()

    def _forget_results(self) -> None:
        """Drop the scores of the previous dataset or model, and any scoring still running for them."""
        self._generation += 1
        self._evaluate_again = False
        self.jobs.cancel()
        self.comparison, self.last_result = [], None
        self.comparison_note.setText(COMPARISON_NOTE)
        self.split_label.setText("")
        self.progress_label.setText("")

    # --- prompts kept per dataset ------------------------------------------------------------------

    def _keep_prompts(self) -> None:
        """The prompts or the saved sets changed: write them for the open dataset now."""
        self._memory_dirty = True
        self._remember_prompts()

    def _remember_prompts(self) -> None:
        """Write the editor's prompts and the saved sets to the open dataset's prompts file."""
        if not self._memory_path or not self._memory_dirty:
            return
        active = self.current_prompt_set() or self.state.prompts  # a half-typed template: its last valid form
        try:
            save_dataset_prompts(self._memory_path, DatasetPrompts(active, list(self.saved_sets.values())))
        except OSError as exc:
            self.state.post_status(f"Couldn't keep the prompts for {self._memory_path}: {exc.strerror or exc}.")
            return
        self._memory_dirty = False

    def _restore_prompts(self, *, keep_saved_sets: bool) -> None:
        """Load the prompts kept for the dataset just opened; without any, the editor's carry over, and
        the saved sets too when ``keep_saved_sets`` (they were saved before any dataset was open)."""
        if not self._memory_path:
            return
        try:
            kept = load_dataset_prompts(self._memory_path)
        except ClipStudioError as exc:
            self.state.post_status(f"Couldn't restore the prompts kept for this dataset: {exc}")
            kept = None
        if kept is None:
            if not keep_saved_sets:
                self.saved_sets = {}
            self._memory_dirty = bool(self.saved_sets)
            return
        self.saved_sets = {p.name: p for p in kept.saved_sets}
        self.editor.load_prompt_set(kept.active)
        self._publish_prompts()
        self._memory_dirty = False
        sets = f" and {len(kept.saved_sets)} saved set(s)" if kept.saved_sets else ""
        self.state.post_status(f"Restored the prompts{sets} you wrote for this dataset.")

    # --- evaluation -------------------------------------------------------------------------------

    def _ready(self) -> str | None:
        """Why scoring can't start now, or None."""
        if not self.banner.refresh():
            return "missing"
        if not self.state.dataset.is_classification:
            return "This dataset has no class labels (2 or more classes), so prompts can't be scored on it."
        if self.current_prompt_set() is None:
            return f"Every template line needs {PLACEHOLDER}; fix the marked lines first."
        return None

    def _evaluate_pressed(self) -> None:
        if self.banner.draw_attention():
            self.evaluate()

    def evaluate(self) -> None:
        """Score the editor's prompts on the validation images (images encoded once per model)."""
        problem = self._ready()
        if problem is not None:
            if problem != "missing":
                self.progress_label.setText(f"<span style='color:#c62828'>{problem}</span>")
            return
        if self.jobs.busy("evaluate prompts"):
            self._evaluate_again = True  # score the newest edit once the running job is done
            return
        self._publish_prompts()
        model, prompts, dataset = self.state.model, self.current_prompt_set(), self.state.dataset
        store, split_config = self.state.embeddings, self.state.split_config()

        def job(callback, should_stop):
            part = selection_part(dataset, split_config)
            # This runs as the user types: no per-image list (the screen shows none), only edited texts encoded.
            result = score_dataset(store, model, part.dataset, prompts, with_predictions=False,
                                   callback=callback, should_stop=should_stop)
            if result.cancelled:
                return None
            head = own_classifier(model, part.dataset.class_names) is not None
            return part, head, result

        generation = self._generation
        self.progress_label.setText("Scoring…")
        if self.last_result is None:  # re-scoring an edit keeps the previous numbers until the new ones come
            self.ci_label.setText("Scoring the validation images; the numbers appear here when done.")
        self.jobs.start(job, name="evaluate prompts",
                        succeeded=lambda outcome: self._on_evaluate_succeeded(outcome, generation),
                        finished=self._on_evaluate_finished)

    def _on_evaluate_succeeded(self, outcome, generation: int) -> None:
        if generation != self._generation:
            return  # scored for a dataset or model that is no longer open
        if outcome is None:
            self.progress_label.setText("Cancelled.")
            return
        part, head, result = outcome
        note = ("\nThis model classifies with its own trained class head, so prompts don't change its numbers."
                if head else "")
        self.split_label.setText(f"Scored on the {part.description} (prompts are never scored on the test "
                                 f"images).{note}")
        self.last_result = result
        self._part_name = part.name
        self.progress_label.setText(scored_text(result, len(part.dataset)))
        self._show_result(result)
        self.evaluated.emit(result)

    def _on_evaluate_finished(self) -> None:
        if self.last_result is None and not self.jobs.busy("evaluate prompts"):
            self.ci_label.setText(PRESS_EVALUATE)  # failed or cancelled: nothing is being scored now
        if self._evaluate_again:
            self._evaluate_again = False
            self.evaluate()

    def _show_result(self, result) -> None:
        self.recall_plot.clear()
        if result is None or result.accuracy is None:
            self.accuracy_label.setText("")
            self.ci_label.setText(PRESS_EVALUATE)
            self.balanced_label.setText("")
            self.chance_label.setText("")
            self._show_class_axis(self._class_names())
            return
        where = PART_WORDS.get(self._part_name, "validation images")
        self.accuracy_label.setText(percent(result.accuracy))
        self.ci_label.setText(f"accuracy on the {where}{interval_text(result.ci95.get('accuracy'), result.n)}")
        self.balanced_label.setText(f"balanced accuracy {percent(result.balanced_accuracy)}"
                                    + interval_text(result.ci95.get("balanced_accuracy"), result.n))
        self.chance_label.setText(chance_text(class_counts(result)))
        names = list(result.class_names)
        recalls = [result.per_class[n]["recall"] for n in names]
        ys = np.arange(len(names))[::-1]
        brushes = [pg.mkBrush("#2e9d4f" if r >= 0.8 else "#e0a800" if r >= 0.5 else "#d43c3c") for r in recalls]
        self.recall_plot.addItem(pg.BarGraphItem(x0=0, y=ys, height=0.6, width=recalls, brushes=brushes,
                                                 pen=pg.mkPen(None)))
        for y, r, n in zip(ys, recalls, names, strict=True):
            support = result.per_class[n]["support"]
            text = pg.TextItem(f"{100 * r:.0f}%  (n={support})", color="#222", anchor=(0, 0.5))
            text.setPos(min(r, 0.8) + 0.01, y)
            self.recall_plot.addItem(text)
        self._show_class_axis(names)

    def _show_class_axis(self, names: list[str]) -> None:
        """One row per class of ``names`` (the open dataset's while nothing is scored), recall from 0 to 1."""
        ys = np.arange(len(names))[::-1]
        self.recall_plot.getAxis("left").setTicks([[(y, n) for y, n in zip(ys, names, strict=True)]])
        self.recall_plot.setYRange(-0.6, max(len(names), 1) - 0.4, padding=0)
        self.recall_plot.setXRange(0, 1.0, padding=0.02)

    # --- prompt sets --------------------------------------------------------------------------------

    def save_as_set(self, name: str | None = None) -> bool:
        """Store the editor's prompts under a name and re-score every saved set."""
        prompts = self.current_prompt_set()
        if prompts is None:
            self.progress_label.setText(f"<span style='color:#c62828'>Every template line needs "
                                        f"{PLACEHOLDER} before the set can be saved.</span>")
            return False
        if name is None:
            name, ok = QInputDialog.getText(self, "Save prompt set", "Name of this prompt set:",
                                            text=f"set {len(self.saved_sets) + 1}")
            if not ok:
                return False
        name = name.strip() or f"set {len(self.saved_sets) + 1}"
        self.saved_sets[name] = PromptSet(name=name, templates=list(prompts.templates),
                                          class_texts={k: list(v) for k, v in prompts.class_texts.items()})
        self.editor.set_name = name
        self._publish_prompts()
        self._keep_prompts()
        self._fill_comparison()
        self.compare_sets()
        return True

    def compare_sets(self) -> None:
        """Score every saved set on the validation images' cached embeddings (only texts are encoded)."""
        if not self.saved_sets or self._ready() is not None:
            return
        if self.jobs.busy("compare prompt sets"):
            self.jobs.cancel("compare prompt sets")
        model, sets, dataset = self.state.model, list(self.saved_sets.values()), self.state.dataset
        store, split_config = self.state.embeddings, self.state.split_config()

        def job(callback, should_stop):
            part = selection_part(dataset, split_config)
            rows = compare_prompt_sets(store, model, part.dataset, sets, callback=callback, should_stop=should_stop)
            counts = {name: 0 for name in part.dataset.class_names}
            for sample in part.dataset.samples:
                counts[part.dataset.class_names[sample.label]] += 1
            return None if should_stop() else (rows, part, counts)

        generation = self._generation
        self.progress_label.setText("Comparing prompt sets…")
        self.jobs.start(job, name="compare prompt sets",
                        succeeded=lambda rows: self._on_compare_succeeded(rows, generation))

    def _on_compare_succeeded(self, outcome, generation: int) -> None:
        if outcome is None or generation != self._generation:
            return
        rows, part, counts = outcome
        self.comparison = list(rows)
        self.comparison_note.setText(f"Saved sets are scored on the {part.description}; the best (highest "
                                     f"balanced accuracy) is highlighted. {chance_text(counts)}")
        self.progress_label.setText(f"Compared {len(rows)} prompt set(s).")
        self._fill_comparison()
        self.compared.emit(self.comparison)

    def _fill_comparison(self) -> None:
        scored = {row["name"]: row for row in self.comparison}
        class_names = self._class_names()
        table = self.comparison_table
        table.clear()
        table.setColumnCount(3 + len(class_names))
        table.setHorizontalHeaderLabels(["Set", "Accuracy", "Balanced acc."] + class_names)
        table.horizontalHeaderItem(2).setToolTip(TERMS["balanced_accuracy"].plain)
        for col, name in enumerate(class_names, 3):
            table.horizontalHeaderItem(col).setToolTip(f"Recall of {name}: share of its images classified right")
        table.setRowCount(len(self.saved_sets))
        best = max((r for r in scored.values() if r["balanced_accuracy"] is not None),
                   key=lambda r: r["balanced_accuracy"], default=None)
        for row, name in enumerate(self.saved_sets):
            data = scored.get(name)
            cells = [name]
            if data is None:
                cells += ["…", "…"] + ["" for _ in class_names]
            else:
                cells += [percent(data["accuracy"]), percent(data["balanced_accuracy"])]
                cells += [percent(data["per_class_recall"].get(n)) for n in class_names]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(self._set_tooltip(self.saved_sets[name]))
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if best is not None and data is best:
                    item.setBackground(_GOOD)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, col, item)
        table.resizeColumnsToContents()

    @staticmethod
    def _set_tooltip(prompts: PromptSet) -> str:
        lines = [f"Templates ({len(prompts.templates)}):"] + [f"  {t}" for t in prompts.templates]
        if prompts.class_texts:
            lines.append(f"Own texts for: {', '.join(prompts.class_texts)}")
        return "\n".join(lines)

    def best_set_name(self) -> str | None:
        rows = [r for r in self.comparison if r["balanced_accuracy"] is not None]
        return max(rows, key=lambda r: r["balanced_accuracy"])["name"] if rows else None

    def use_set(self, name: str) -> None:
        """Load a saved set into the editor and make it the active prompt set."""
        self.editor.load_prompt_set(self.saved_sets[name])
        self.state.set_prompts(self.current_prompt_set(name))
        self._keep_prompts()
        self.state.post_status(f"Using prompt set '{name}'.")

    def _selected_set(self) -> str | None:
        rows = self.comparison_table.selectionModel().selectedRows()
        return self.comparison_table.item(rows[0].row(), 0).text() if rows else None

    def _on_use_set_clicked(self, *_args) -> None:
        name = self._selected_set()
        if name is not None:
            self.use_set(name)

    def _on_remove_set_clicked(self) -> None:
        name = self._selected_set()
        if name is not None:
            self.saved_sets.pop(name, None)
            self.comparison = [r for r in self.comparison if r["name"] != name]
            self._keep_prompts()
            self._fill_comparison()

    # --- screen contract -------------------------------------------------------------------------

    def busy(self) -> bool:
        return self.jobs.busy() or self.banner.busy()

    def shutdown(self) -> None:
        if self._publish_timer.isActive():  # the last edit, typed just before quitting
            self._publish_timer.stop()
            self._memory_dirty = True
        self._remember_prompts()
        self.jobs.shutdown()
        self.banner.shutdown()
