"""The new user's first session, driven through the real window: ``python -m clipstudio.gui.walkthrough``.

Each step uses the widgets a person would: the dataset folder is dropped on the window; the
Prompts screen's "Load the built-in model" and Evaluate buttons are clicked; the template is
typed; the training form is filled and Start, Stop and Resume are clicked; the finished run
opens in Results, where "Misclassified only" is ticked and the confusion matrix's largest
off-diagonal cell is clicked; a text query is typed into Retrieval and Enter pressed. A PNG is
saved after each step, with ``walkthrough.json`` holding what each screen showed, and a 10 ms
heartbeat on the GUI thread records the longest stall while the model loads, the images are
encoded, the model trains and the run is scored (the spans where the app works and the script only
waits).

    xvfb-run -a .venv/bin/python -m clipstudio.gui.walkthrough --data ../shared/datasets/bloodmnist/folders

The tests run the same steps on the bundled sample with a tiny model (``tests/gui/test_full_flow.py``).
Uses a throw-away app-data folder and QSettings; dialogs are logged rather than waited on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from clipstudio.engine.storage.atomic import atomic_write_text
from clipstudio.gui.heartbeat import Heartbeat, stall_stats
from clipstudio.gui.main_window import MainWindow
from clipstudio.gui.screens.retrieval_screen import RUN
from clipstudio.gui.screenshots import _settle, _wait_until, start_scripted_app, user_folder

BLOOD_TEMPLATE = "a blood smear micrograph of a {class_name} blood cell."


@dataclass
class WalkthroughPlan:
    """What the walkthrough does; the defaults are a few minutes of fine-tuning on BloodMNIST."""

    data: str
    model: str = "builtin"  # "builtin" goes through the banner's button; anything else through the Model screen
    template: str = BLOOD_TEMPLATE
    method: str = "full"
    epochs: int = 10
    batch_size: int = 32
    img_size: int = 112  # 0: the model's own input size (ViT models need that)
    train_before_stop_s: float = 45.0  # Stop is pressed after this much training
    query: str = "a blood smear micrograph of a neutrophil blood cell."
    out: Path | None = None  # where the PNGs go; None: no pictures
    size: tuple[int, int] = (1400, 900)
    timeout_s: float = 1800.0  # the longest any one step may take
    trace_stalls: Path | None = None  # dump every thread's stack here whenever the GUI thread stalls > 100 ms


@dataclass
class WalkthroughReport:
    steps: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


class Walkthrough:
    """Drives a MainWindow through the plan; ``run()`` returns what the screens showed."""

    def __init__(self, app, window, plan: WalkthroughPlan) -> None:
        self.app, self.window, self.plan = app, window, plan
        self.state = window.state
        self.report = WalkthroughReport()
        self._spans: dict[str, list[tuple[float, float]]] = {}

    # --- plumbing ------------------------------------------------------------------------------------
    def _wait(self, predicate: Callable[[], bool], what: str, timeout_s: float | None = None) -> None:
        if not _wait_until(self.app, predicate, timeout_s or self.plan.timeout_s):
            raise TimeoutError(f"walkthrough: {what} did not happen within {timeout_s or self.plan.timeout_s:.0f} s")

    def _idle(self) -> None:
        self._wait(lambda: not self.window.busy_screens(), "the screens becoming idle")
        _settle(self.app, 0.3)

    def _step(self, name: str, title: str, **facts) -> None:
        entry = {"step": len(self.report.steps) + 1, "name": name, "title": title, **facts}
        if self.plan.out is not None:
            self.plan.out.mkdir(parents=True, exist_ok=True)
            path = self.plan.out / f"{entry['step']:02d}_{name}.png"
            _settle(self.app, 0.3)
            if not self.window.grab().save(str(path)):
                raise OSError(f"could not write {path}")
            entry["screenshot"] = path.name
        self.report.steps.append(entry)
        print(f"[walkthrough] {entry['step']:02d} {title}: {facts}", flush=True)

    def _click(self, widget) -> None:
        if not widget.isEnabled():
            raise RuntimeError(f"walkthrough: {widget.text() if hasattr(widget, 'text') else widget} is disabled")
        QTest.mouseClick(widget, Qt.MouseButton.LeftButton)
        self.app.processEvents()

    def _type(self, widget, text: str) -> None:
        widget.setFocus()
        widget.selectAll()
        QTest.keyClicks(widget, text)
        self.app.processEvents()

    def _show(self, key: str):
        self.window.show_screen(key)
        _settle(self.app, 0.3)
        screen = self.window.screen_for(key)
        if screen is None:
            raise RuntimeError(f"walkthrough: the {key} screen did not load: {self.window.screen_errors.get(key, '')}")
        return screen

    # --- the steps ---------------------------------------------------------------------------------
    def drop_dataset(self) -> None:
        self._show("data")
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(Path(self.plan.data).resolve()))])
        where = QPointF(self.window.width() / 2, self.window.height() / 2)
        args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        with warnings.catch_warnings():  # PySide6 flags the QPoint overload, yet Qt 6 has no other
            warnings.simplefilter("ignore", DeprecationWarning)
            enter = QDragEnterEvent(where.toPoint(), *args)
        QApplication.sendEvent(self.window, enter)
        if not enter.isAccepted():
            raise RuntimeError(f"walkthrough: the window refused the dropped folder {self.plan.data}")
        QApplication.sendEvent(self.window, QDropEvent(where, *args))
        self._wait(lambda: self.state.dataset is not None and self.state.health is not None, "loading the dataset")
        self._idle()
        data = self.window.screen_for("data")
        dataset = self.state.dataset
        self._step(
            "data_dropped",
            "Drop the class folder on the window",
            format=data.format_label.text(),
            images=len(dataset),
            classes=len(dataset.class_names),
        )

    def load_model_and_evaluate(self) -> None:
        prompts = self._show("prompts")
        if self.plan.model == "builtin":
            if prompts.banner.load_button.isVisible():
                self._click(prompts.banner.load_button)
        else:
            model = self._show("model")
            model.folder_radio.setChecked(True)
            self._type(model.folder_edit, self.plan.model)
            self._click(model.load_button)
            prompts = self._show("prompts")
        with self._span("model loading"):
            self._wait(lambda: self.state.model is not None, "loading the model")
            self._idle()
        with self._span("image encoding (zero-shot evaluation)"):
            self._click(prompts.evaluate_button)
            self._wait(lambda: prompts.last_result is not None, "the zero-shot evaluation")
            self._idle()
        result = prompts.last_result
        self.report.facts["zero_shot_default"] = {"accuracy": result.accuracy, "balanced": result.balanced_accuracy}
        self._step(
            "zero_shot_default",
            "Load the model and evaluate the default prompts",
            accuracy=prompts.accuracy_label.text(),
            balanced=prompts.balanced_label.text(),
            split=prompts.split_label.text(),
        )

    def edit_prompt(self) -> None:
        prompts = self._show("prompts")
        before = prompts.last_result
        self._type(prompts.editor.templates_edit, self.plan.template)
        _settle(self.app, 0.6)  # the editor publishes its prompts after a short pause in typing
        started = time.perf_counter()
        self._click(prompts.evaluate_button)
        self._wait(lambda: prompts.last_result is not None and prompts.last_result is not before
                   and not prompts.busy(), "re-scoring the edited prompt")
        seconds = time.perf_counter() - started
        self._idle()
        result = prompts.last_result
        self.report.facts["zero_shot_edited"] = {
            "accuracy": result.accuracy, "balanced": result.balanced_accuracy, "rescore_s": seconds,
        }
        self._step(
            "prompt_edited",
            "Type a better template and evaluate again",
            template=self.plan.template,
            accuracy=prompts.accuracy_label.text(),
            balanced=prompts.balanced_label.text(),
            rescore_s=round(seconds, 2),
        )

    def train_stop_resume(self) -> None:
        train = self._show("train")
        form = train.form
        form.method.setCurrentIndex(form.method.findData(self.plan.method))
        form.epochs.setValue(self.plan.epochs)
        form.batch_size.setValue(self.plan.batch_size)
        form.img_size.setValue(self.plan.img_size)
        _settle(self.app, 0.2)
        # Training spans leave out the script's own screenshots (grabbing the window takes the GUI thread).
        spans = self._spans.setdefault("training", [])
        self._click(train.start_button)
        self._wait(lambda: train._run.get("t0") is not None, "the first training step")
        start = time.perf_counter()
        _wait_until(self.app, lambda: not train.busy(), self.plan.train_before_stop_s)  # train a while
        spans.append((start, time.perf_counter()))
        self._step("training_live", "Fine-tune with live plots", progress=train.eta.text())
        if not train.busy():
            raise RuntimeError("walkthrough: training finished before Stop; give it more epochs")
        start = time.perf_counter()
        self._click(train.stop_button)
        self._wait(lambda: not train.busy(), "stopping")
        spans.append((start, time.perf_counter()))
        self._step("stopped", "Stop: the run is saved", message=train.eta.text())
        start = time.perf_counter()
        self._click(train.resume_button)
        self._wait(lambda: train.busy() and train._run.get("t0") is not None, "resuming")
        self._wait(lambda: not train.busy(), "training to finish")
        spans.append((start, time.perf_counter()))
        stayed = self.window.stack.currentWidget() is train  # the whole run's curves stay in sight
        _settle(self.app, 0.3)
        self._step("finished", "Resume, and the run finishes", message=train.eta.text(), stayed_on_train=stayed,
                   view_results=train.view_results_button.isVisible(),
                   log_tail=train.log.toPlainText().splitlines()[-3:])
        self.report.facts["run_dir"] = self.state.run_dir

    def browse_mistakes(self) -> None:
        with self._span("scoring the run (Results)"):
            self._click(self.window.screen_for("train").view_results_button)
            _settle(self.app, 0.3)
            results = self.window.screen_for("results")
            self._wait(lambda: results.last_result is not None and not results.busy(),
                       "scoring the fine-tuned model")
            self._idle()
        result = results.last_result
        self.report.facts["fine_tuned"] = {"accuracy": result.accuracy, "balanced": result.balanced_accuracy,
                                           "source": results.source_combo.currentText()}
        self._step("results", "View results: the finished run in Results", source=results.source_combo.currentText(),
                   accuracy=results.accuracy_label.text())
        self._click_checkbox(results.misclassified_check)
        row, col = self._worst_cell(results.matrix.counts())

        QTest.mouseClick(results.matrix, Qt.MouseButton.LeftButton, pos=results.matrix.cell_rect(row, col).center())
        _settle(self.app, 0.5)
        names = self.state.dataset.class_names
        self._step("confusion_cell", "Misclassified only, then click the largest confusion", true=names[row],
                   predicted=names[col], cell=results.cell_label.text(), shown=results.count_label.text())

    def _click_checkbox(self, box) -> None:
        if not box.isChecked():
            self._click(box)

    @staticmethod
    def _worst_cell(matrix: list[list[int]]) -> tuple[int, int]:
        cells = [(count, r, c) for r, row in enumerate(matrix) for c, count in enumerate(row) if r != c]
        if not cells:
            raise RuntimeError("walkthrough: the confusion matrix is empty")
        _, row, col = max(cells)
        return row, col

    def search_text(self) -> None:
        retrieval = self._show("retrieval")
        run_items = [i for i in range(retrieval.model_combo.count())
                     if str(retrieval.model_combo.itemData(i)).startswith(f"{RUN}:")]
        if run_items:
            retrieval.model_combo.setCurrentIndex(run_items[0])
            retrieval.model_combo.activated.emit(run_items[0])
        self._type(retrieval.query_edit, self.plan.query)
        QTest.keyClick(retrieval.query_edit, Qt.Key.Key_Return)
        self._wait(lambda: len(retrieval.grid.tiles()) > 0 and not retrieval.busy(), "the text search")
        self._idle()
        self._step("search", "Search the images by text", query=self.plan.query,
                   model=retrieval.model_combo.currentText(), result=retrieval.result_label.text(),
                   hits=len(retrieval.grid.tiles()))

    @contextmanager
    def _span(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._spans.setdefault(name, []).append((start, time.perf_counter()))

    def run(self) -> WalkthroughReport:
        trace = open(self.plan.trace_stalls, "w", encoding="utf-8") if self.plan.trace_stalls else None  # noqa: SIM115
        heartbeat = Heartbeat(trace_file=trace, trace_late_ms=100)
        heartbeat.start()
        try:
            self.drop_dataset()
            self.load_model_and_evaluate()
            self.edit_prompt()
            self.train_stop_resume()
            self.browse_mistakes()
            self.search_text()
        finally:
            heartbeat.stop()
            if trace is not None:
                trace.close()
        self.report.facts["gui_stall"] = {
            name: {**stall_stats(heartbeat.ticks, spans, late_ms=100),
                   "seconds": round(sum(end - start for start, end in spans), 1)}
            for name, spans in self._spans.items()
        }
        return self.report


def run_walkthrough(plan: WalkthroughPlan) -> WalkthroughReport:
    """Open the app in a throw-away app-data folder and walk ``plan``; the window is closed after."""
    app, uninstall_hooks = start_scripted_app()
    window = MainWindow()
    window.resize(*plan.size)
    window.show()
    _settle(app, 1.0)
    try:
        # The start-up warm-up (torch and transformers imports) runs 1.5 s after the first paint.
        _wait_until(app, lambda: not window.device_label.text().endswith("detecting…"), 120)
        report = Walkthrough(app, window, plan).run()
    finally:
        window.shutdown()
        window.close()
        uninstall_hooks()
    if plan.out is not None:
        atomic_write_text(plan.out / "walkthrough.json",
                          json.dumps({"steps": report.steps, "facts": report.facts}, indent=2, default=str) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipstudio.gui.walkthrough", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the class folder to drop on the window")
    parser.add_argument("--out", default="docs/walkthrough", help="folder for the PNGs and walkthrough.json")
    parser.add_argument("--model", default="builtin", help="builtin, or a model folder to load on the Model screen")
    parser.add_argument("--template", default=BLOOD_TEMPLATE, help="the prompt template to type")
    parser.add_argument("--query", default=WalkthroughPlan.query, help="the text to search for")
    parser.add_argument("--epochs", type=int, default=WalkthroughPlan.epochs)
    parser.add_argument("--img-size", type=int, default=WalkthroughPlan.img_size)
    parser.add_argument("--stop-after", type=float, default=WalkthroughPlan.train_before_stop_s,
                        help="seconds of training before Stop is pressed (default 45)")
    parser.add_argument("--home", default=None,
                        help="per-user folder for runs and caches (default: a temporary folder, removed afterwards)")
    parser.add_argument("--trace-stalls", default=None, help="file for the thread stacks of each GUI stall > 100 ms")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data}: not a folder")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    plan = WalkthroughPlan(data=args.data, model=args.model, template=args.template, query=args.query,
                           epochs=args.epochs, img_size=args.img_size, train_before_stop_s=args.stop_after,
                           out=Path(args.out), trace_stalls=Path(args.trace_stalls) if args.trace_stalls else None)
    with user_folder(args.home, "clipstudio-walkthrough-") as home:
        os.environ["CLIPSTUDIO_HOME"] = home
        report = run_walkthrough(plan)
    print(json.dumps(report.facts, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
