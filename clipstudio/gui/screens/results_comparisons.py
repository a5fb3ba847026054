"""The Results screen's comparisons of models, each scored on the report images in the screen's jobs:

- ``BeforeAfterTab``: a run's starting model against its fine-tuned model, same images and prompts;
- ``WiseSweeps``: the WiSE-FT tab's sweep over α and its α chosen on the run's validation images;
- ``ModelComparison``: the Compare tab, any two models (runs, their starting models, the current model), paired.

They hold no reference to the screen (a reference cycle through Qt objects can crash the interpreter's last
garbage collection): the screen passes the selected run folder with each request.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from clipstudio.engine.evaluation.paired import compare_results
from clipstudio.engine.evaluation.split_policy import report_part
from clipstudio.engine.evaluation.zero_shot import score_dataset
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import is_run_folder, run_start_model_spec
from clipstudio.gui.help import explain
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.screens.retrieval_screen import recent_runs
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.model_pair import ModelPairView, paired_summary
from clipstudio.gui.widgets.run_comparison import BeforeAfterTable, WiseCurve

ALPHAS = [round(0.1 * i, 1) for i in range(11)]


class BeforeAfterTab(QWidget):
    """The Before / after tab: its Compare button asks the screen, which calls ``compare`` with the run."""

    compare_requested = Signal()
    compared = Signal(object)  # {"before": payload, "after": payload, "before_label", "after_label", "paired"}

    def __init__(self, state: AppState, jobs: ScreenJobs, status_label: QLabel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state, self._jobs, self._status_label = state, jobs, status_label
        self.compare_button = QPushButton("Compare before / after")
        self.compare_button.clicked.connect(lambda: self.compare_requested.emit())
        self.compare_label = QLabel("The run's starting model against its fine-tuned model, same images and prompts.")
        self.compare_label.setWordWrap(True)
        self.compare_table = BeforeAfterTable()
        bv = QVBoxLayout(self)
        bv.addWidget(self.compare_label)
        compare_row = QHBoxLayout()
        compare_row.addWidget(self.compare_button)
        compare_row.addWidget(explain("paired_comparison", self.compare_label))
        compare_row.addStretch(1)
        bv.addLayout(compare_row)
        bv.addWidget(self.compare_table, 1)

    def compare(self, run_dir: str) -> None:
        """Score the run's starting model and its fine-tuned model on the report images."""
        state = self._state
        if not run_dir or state.dataset is None or self._jobs.busy("compare"):
            return
        dataset, split_config, cache = state.dataset, state.split_config(), state.embeddings.disk_cache

        def job(callback, should_stop):
            from clipstudio.engine.evaluation.before_after import compare_run  # deferred: imports torch

            part = report_part(dataset, split_config)
            # With the whole dataset as source, class data also gets the paired comparison.
            ba = compare_run(run_dir, part.dataset, split=part.description, cache=cache, source=dataset,
                             callback=callback, should_stop=should_stop)
            if ba.cancelled:
                return None
            paired = ba.paired.to_dict() if ba.paired is not None else None
            return {"before": ba.before, "after": ba.after, "before_label": ba.before_label,
                    "after_label": ba.after_label, "paired": paired}

        self.compare_label.setText("Scoring the starting and the fine-tuned model…")
        self._jobs.start(job, name="compare", succeeded=self._on_compare_succeeded)

    def _on_compare_succeeded(self, payload: dict | None) -> None:
        if payload is None:
            self.compare_label.setText("Cancelled.")
            return
        text = f"Before: {payload['before_label']}\nAfter: {payload['after_label']}"
        if payload.get("paired"):
            text += "\n\n" + paired_summary(payload["paired"])
        self.compare_label.setText(text)
        self.compare_table.show_payloads(payload["before"], payload["after"])
        self._status_label.setText("")
        self.compared.emit(payload)


class WiseSweeps(QObject):
    """The WiSE-FT tab's jobs: metrics at α = 0, 0.1, …, 1, and α chosen on the run's validation images."""

    swept = Signal(list)  # wise_sweep rows

    def __init__(self, state: AppState, jobs: ScreenJobs, view: WiseCurve, status_label: QLabel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._state, self._jobs, self._view, self._status_label = state, jobs, view, status_label
        self.rows: list[dict] = []

    def sweep(self, run_dir: str) -> None:
        """Metrics of run ``run_dir``'s WiSE-FT model at α = 0, 0.1, …, 1 (each α encodes the images once)."""
        if self._jobs.busy("sweep"):
            return
        state = self._state
        dataset, split_config, cache = state.dataset, state.split_config(), state.embeddings.disk_cache

        def job(callback, should_stop):
            from clipstudio.engine.evaluation.wise import wise_sweep  # deferred: imports torch

            part = report_part(dataset, split_config)
            return wise_sweep(run_dir, part.dataset, alphas=ALPHAS, cache=cache, callback=callback,
                              should_stop=should_stop)

        self._view.sweep_button.setEnabled(False)
        self._jobs.start(job, name="sweep", succeeded=self._on_sweep_succeeded,
                         finished=lambda: self._view.sweep_button.setEnabled(True))

    def choose(self, run_dir: str) -> None:
        """Choose run ``run_dir``'s WiSE-FT α on its validation images and move the slider there."""
        if self._jobs.busy("wise-choice"):
            return
        state = self._state
        dataset, split_config, cache = state.dataset, state.split_config(), state.embeddings.disk_cache

        def job(callback, should_stop):
            from clipstudio.engine.evaluation.before_after import choose_wise_alpha  # deferred: imports torch

            return choose_wise_alpha(run_dir, report_part(dataset, split_config), dataset, alphas=ALPHAS,
                                     cache=cache, callback=callback, should_stop=should_stop)

        self._view.choose_button.setEnabled(False)
        self._status_label.setText("Choosing α on the validation images…")
        self._jobs.start(job, name="wise-choice", succeeded=self._on_wise_chosen,
                         finished=lambda: self._view.choose_button.setEnabled(True))

    def _on_wise_chosen(self, choice) -> None:
        self._status_label.setText("")
        if choice is not None:  # None: cancelled
            self._view.set_choice(choice)

    def _on_sweep_succeeded(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        self._status_label.setText("")
        self._view.set_rows(self.rows)
        self.swept.emit(self.rows)


class ModelComparison(QObject):
    """The Compare tab's choices and job: models A and B scored on the report images and compared paired."""

    compared = Signal(dict)  # a_label, b_label, a, b (payloads), paired, part

    def __init__(self, state: AppState, jobs: ScreenJobs, view: ModelPairView, run_models: dict,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._state, self._jobs, self._view = state, jobs, view
        self._run_models = run_models  # the screen's: run folder (or "start:<run>") -> model, loaded once
        view.compare_requested.connect(self.compare)

    def refresh_choices(self) -> None:
        """Offer every recent run, fine-tuned and as it started, and the current model; the selected run
        starts as B against its own starting model as A."""
        state = self._state
        runs = list(dict.fromkeys([*([state.run_dir] if is_run_folder(state.run_dir or "") else []),
                                   *recent_runs()]))
        choices: list[tuple[str, tuple[str, str]]] = []
        for run in runs:
            name = Path(run).name
            choices.append((f"{name} (fine-tuned)", ("run", run)))
            choices.append((f"{name}: the model it started from (zero-shot, the run's prompts)", ("start", run)))
        if state.model is not None:
            choices.append((f"Current model: {state.model_spec} (zero-shot, the Prompts screen's prompts)",
                            ("current", "")))
        a = b = None
        if runs and self._view.a_combo.count() == 0:
            a, b = ("start", runs[0]), ("run", runs[0])
        self._view.set_choices(choices, a, b)

    def compare(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        """Score models ``a`` and ``b`` (``(kind, run folder)``) on the report images and compare them paired."""
        if not self._ready() or self._jobs.busy("pair"):
            return
        state = self._state
        dataset, split_config, store = state.dataset, state.split_config(), state.embeddings
        models, current = self._run_models, (state.model, state.prompts)
        combo = self._view.a_combo
        labels = {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}

        def load(kind: str, run: str):
            from clipstudio.engine.models import load_model, load_run_model  # deferred: imports torch

            if kind == "current":
                return current
            key = run if kind == "run" else f"start:{run}"
            if key not in models:
                models[key] = load_run_model(run) if kind == "run" else load_model(run_start_model_spec(run))
            return models[key], run_prompt_set(run)

        def job(callback, should_stop):
            part = report_part(dataset, split_config)
            scored = []
            for kind, run in (a, b):
                model, prompts = load(kind, run)
                result = score_dataset(store, model, part.dataset, prompts, with_logits=True, callback=callback,
                                       should_stop=should_stop)
                if result.cancelled:
                    return None
                scored.append(result)
            paired = compare_results(*scored, names=("A", "B"))
            return {"a_label": labels.get(a, a[1]), "b_label": labels.get(b, b[1]), "a": scored[0].to_dict(),
                    "b": scored[1].to_dict(), "paired": paired.to_dict(), "part": part.description}

        self._view.clear()
        self._view.set_status("Scoring model A and model B on the report images…")
        self._jobs.start(job, name="pair", succeeded=self._on_models_compared,
                         failed=lambda message, _details: self._view.set_status(message))

    def _ready(self) -> bool:
        if self._state.dataset is None:
            self._view.set_status("Open a dataset first: both models are scored on its report images.")
            return False
        if not self._state.dataset.is_classification:
            self._view.set_status("This dataset has no class labels, so there is no accuracy to compare.")
            return False
        return True

    def _on_models_compared(self, payload: dict | None) -> None:
        if payload is None:
            self._view.set_status("Cancelled.")
            return
        self._view.show_comparison(payload)
        self.compared.emit(payload)
