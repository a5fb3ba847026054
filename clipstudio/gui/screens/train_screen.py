"""The Train screen: settings on the left, live curves on the right, progress, log and Start/Stop/Resume.

The Trainer runs in a ``TaskWorker``; its events arrive queued on the GUI thread, where the slot only
appends numbers (the plots redraw on their own timer) and updates a label. Stop is cooperative: the
trainer saves its latest checkpoint and ends cancelled, and Resume continues from that step.
With several GPUs, "Use all N GPUs" runs it as N processes instead (``ProcessRun``), whose events
come from the run folder the first process writes and go through the same slot.
torch is imported inside the worker job, never here, so the window paints fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.config import BUILTIN_LEARNING_RATES, CLASS_DATA_METHODS, TrainConfig, to_dict
from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.events import (
    CheckpointSaved,
    EpochEnded,
    EvalEnded,
    MessageLogged,
    MethodChosen,
    ProgressUpdated,
    StepEnded,
    TrainEnded,
    TrainingStatus,
    TrainStarted,
    epoch_setting,
)
from clipstudio.engine.runs.layout import (
    BEST,
    CV_SUMMARY_FILE,
    LATEST,
    read_run_config,
    resumable_step,
    runs_root,
)
from clipstudio.gui.errors import show_error
from clipstudio.gui.phases import PhaseTracker, format_duration, format_phase, phase_help
from clipstudio.gui.process_run import ProcessRun
from clipstudio.gui.style import ERROR, MUTED_TEXT, icon
from clipstudio.gui.widgets.train_choices import METHODS
from clipstudio.gui.widgets.train_form import TrainForm
from clipstudio.gui.workers import TaskWorker

if TYPE_CHECKING:
    from clipstudio.engine.training.launch import TrainingOutcome

log = logging.getLogger(__name__)

MAX_LOG_LINES = 5000
NO_DATASET = "Open a dataset on the Data screen first."
# While training, hand the GIL over every 1 ms instead of 5: a repaint makes dozens of Qt calls that
# each release and retake the GIL, and a Python-heavy training loop made each retake wait up to 5 ms
# (bench/bench_gui_stall.py: longest stall ~68 -> ~42 ms on 2 CPU cores).
TRAINING_SWITCH_INTERVAL_S = 0.001
PROCESSES_STOP_WAIT_S = 60.0  # quitting during a multi-process run: how long its processes get to save


@dataclass
class TrainJob:
    """Everything the worker needs; built on the GUI thread, run in the worker."""

    cfg: TrainConfig
    dataset: Any = None  # an already-read Dataset, or None to read cfg.data.path
    class_texts: dict[str, list[str]] = field(default_factory=dict)  # written to the run folder

    def __call__(self, callback, should_stop) -> Any:
        # deferred: it imports torch, which the GUI thread never waits for; the worker does.
        from clipstudio.engine.training.launch import train

        return train(
            self.cfg,
            callbacks=[callback],
            should_stop=should_stop,
            dataset=self.dataset,
            class_texts=self.class_texts,
        )


_METRIC_NAMES = {
    "val_loss": "val loss",
    "val_acc": "val acc",
    "val_balanced_acc": "balanced acc",
    "val_mean_recall": "mean R@K",
}


def format_epoch(e: EpochEnded, epochs: int, method: str = "") -> str:
    parts = [f"Epoch {e.epoch}/{epochs}: train loss {e.train_loss:.4f}"]
    for key, value in e.val_metrics().items():
        parts.append(f"{_METRIC_NAMES[key]} {value:.4f}" if key == "val_loss" else f"{_METRIC_NAMES[key]} {value:.3f}")
    parts += [epoch_setting(method, e.lr), format_duration(e.seconds)]
    return " · ".join(parts)


class TrainScreen(QWidget):
    title = "Train"
    icon_name = "train"

    def __init__(self, state, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._worker: TaskWorker | None = None
        self._process_run: ProcessRun | None = None  # a run as several processes ("Use all N GPUs")
        self._gpus, self._gpu_device = 0, "cuda"  # local GPUs (set_gpu_count) and the processes' device
        self._resume_dir = ""  # a run folder Resume continues
        self._run: dict[str, Any] = {}  # facts of the run in progress (from its events)
        self._problem_shown = ""  # the start problem the message line shows, cleared once fixed
        self._phase = PhaseTracker()  # the progress phase under way (encoding images…): speed, time left
        self._switch_interval = sys.getswitchinterval()

        self.form = TrainForm()
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.form.sizeHint().width() + 24)

        self._plots = None  # LivePlots, built on first show: pyqtgraph costs ~0.3 s to import
        self._plots_slot = QVBoxLayout()
        self._plots_slot.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.eta = QLabel("Not started.")
        self.eta.setStyleSheet(f"color: {MUTED_TEXT};")
        # A long progress line wraps; it never widens the right pane over the form.
        self.eta.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.eta.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setPlaceholderText("Training messages appear here.")

        self.start_button = QPushButton(icon("play"), "Start")
        self.start_button.setShortcut(QKeySequence("Ctrl+R"))
        self.start_button.setToolTip("Start training with these settings (Ctrl+R).")
        self.stop_button = QPushButton(icon("stop"), "Stop")
        self.stop_button.setToolTip("Stop after the current step; the run is saved and can be resumed (Esc).")
        self.resume_button = QPushButton(icon("resume"), "Resume")
        self.resume_button.setToolTip("Continue the stopped run from its last saved step.")
        self.resume_run_button = QPushButton("Resume run…")
        self.resume_run_button.setToolTip(f"Choose a run folder with {LATEST} to continue.")
        self.view_results_button = QPushButton(icon("results"), "View results")
        self.view_results_button.setToolTip("Open the finished run on the Results screen: how the trained "
                                            "model does on images it did not learn from.")
        self.view_results_button.hide()  # until a run finishes
        self.all_gpus = QCheckBox()
        self.all_gpus.hide()  # until set_gpu_count finds more than one GPU
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.eta, 2)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(self._plots_slot, 3)
        right_layout.addLayout(progress_row)
        right_layout.addWidget(self.log, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.all_gpus)
        for button in (self.start_button, self.stop_button, self.resume_button, self.resume_run_button,
                       self.view_results_button):
            buttons.addWidget(button)
        buttons.addWidget(self.message, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)

        for keys in ("Esc", "Ctrl+."):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setWhatsThis("Stop training")
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self._on_stop_shortcut_activated)

        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.resume_run_button.clicked.connect(self._on_resume_run_button_clicked)
        self.view_results_button.clicked.connect(self._on_view_results_button_clicked)
        self.form.changed.connect(self._update_controls)
        state.dataset_changed.connect(self._on_state_dataset_changed)
        state.run_changed.connect(self._on_state_run_changed)
        state.model_changed.connect(self._on_state_model_changed)
        self._update_controls()

    @property
    def plots(self):
        """The LivePlots widget (created on first use)."""
        if self._plots is None:
            from clipstudio.gui.widgets.live_plots import LivePlots  # deferred: pyqtgraph takes ~0.3 s

            self._plots = LivePlots()
            self._plots_slot.addWidget(self._plots)
        return self._plots

    def showEvent(self, event) -> None:
        self.plots  # noqa: B018 - build the plots before they are first seen
        super().showEvent(event)

    # --- screen contract ---------------------------------------------------------------------------
    def busy(self) -> bool:
        if self._process_run is not None:
            return True
        return self._worker is not None and self._worker.isRunning()

    def shutdown(self) -> None:
        """Cancel a running training (it saves its latest checkpoint) and wait for it."""
        worker = self._worker
        if worker is not None:
            worker.cancel()
            worker.wait()
            self._on_worker_finished()  # the queued finished signal would arrive too late
        run = self._process_run
        if run is not None:
            run.stop()
            run.wait(PROCESSES_STOP_WAIT_S)  # ends with its finished signal, which cleans up

    def set_gpu_count(self, count: int, device: str = "cuda") -> None:
        """The GPUs on this machine: with more than one, offer to train on all of them.

        ``device``: what each process uses ("cpu" runs CPU processes: for tests on machines without GPUs).
        """
        self._gpus, self._gpu_device = count, device
        self.all_gpus.setText(f"Use all {count} GPUs")
        self.all_gpus.setToolTip(
            f"Train as {count} processes, one per GPU. The batch size is per GPU, so each step learns from "
            f"{count} times as many images and an epoch has {count} times fewer steps. "
            + ("On Windows the GPUs exchange data more slowly (NCCL does not exist there). "
               if sys.platform == "win32" else "")
            + "See docs/DISTRIBUTED.md."
        )
        # The installed (frozen) app has no Python to start `-m clipstudio` processes with: there the
        # command line of a Python install does it (docs/DISTRIBUTED.md).
        offered = count > 1 and not getattr(sys, "frozen", False)
        self.all_gpus.setVisible(offered)
        if not offered:
            self.all_gpus.setChecked(False)

    def use_all_gpus(self) -> bool:
        """Whether Start and Resume run the training as one process per GPU."""
        return self._gpus > 1 and self.all_gpus.isVisibleTo(self) and self.all_gpus.isChecked()

    # --- starting ----------------------------------------------------------------------------------
    def build_config(self) -> TrainConfig:
        """The TrainConfig Start would run: the form's values plus the app's dataset, model, prompts, splits."""
        cfg = self.form.to_config(TrainConfig())
        cfg.data.path = self.state.dataset_path
        split = self.state.split_settings
        cfg.data.val_fraction = float(split.get("val_fraction", cfg.data.val_fraction))
        cfg.data.test_fraction = float(split.get("test_fraction", cfg.data.test_fraction))
        cfg.data.seed = int(split.get("seed", cfg.data.seed))
        cfg.data.group_regex = split.get("group_regex") or None
        cfg.model.spec = self.state.model_spec or "builtin"
        cfg.prompts.templates = list(self.state.prompts.templates)
        cfg.validate()
        return cfg

    def start(self) -> bool:
        """Start a new run with the current settings; False (and an inline message) when it can't."""
        if self.busy():
            return False
        problem = self._start_problem()
        if problem:
            self._show_message(problem, error=True)
            return False
        cfg = self.build_config()
        line = f"Starting {cfg.method} training on {cfg.data.path or 'the open dataset'}…"
        if self.use_all_gpus():
            if cfg.cv.use_cv:
                self._show_message("Cross-validation trains one fold at a time on one GPU; untick "
                                   f"“{self.all_gpus.text()}” to run it.", error=True)
                return False
            self.plots.reset()
            self._launch_processes(cfg, line, class_texts=dict(self.state.prompts.class_texts))
            return True
        job = TrainJob(cfg, dataset=self.state.dataset, class_texts=dict(self.state.prompts.class_texts))
        self.plots.reset()
        self._launch(job, line)
        return True

    def resume(self, run_dir: str | None = None) -> bool:
        """Continue ``run_dir`` (default: the stopped run) from its latest checkpoint."""
        run_dir = run_dir or self._resume_dir
        if self.busy() or not run_dir:
            return False
        step = resumable_step(run_dir)
        if step is None:
            self._show_message(f"{run_dir} has no {LATEST} to resume from.", error=True)
            return False
        try:
            cfg = read_run_config(run_dir)
        except ClipStudioError as exc:
            self._show_message(str(exc), error=True)
            return False
        cfg.resume_from = str(run_dir)
        cfg.output = str(run_dir)
        cfg.cv.use_cv = False
        same_data = self.state.dataset is not None and _same_path(self.state.dataset_path, cfg.data.path)
        self.form.set_config(cfg)
        self.plots.reset()
        line = f"Resuming {run_dir} from step {step}…"
        if self.use_all_gpus():
            self._launch_processes(cfg, line)
            return True
        job = TrainJob(cfg, dataset=self.state.dataset if same_data else None)
        self._launch(job, line)
        return True

    def _begin(self, cfg: TrainConfig, line: str) -> None:
        """What every start and resume does before the run starts: the log line, a clean progress area."""
        log.info("training: %s Settings: %s", line, json.dumps(to_dict(cfg), sort_keys=True))
        self._run = {"cv": cfg.cv.use_cv, "epochs": cfg.epochs, "batch": cfg.batch_size, "method": cfg.method}
        self._resume_dir = ""
        self._phase = PhaseTracker()
        self.view_results_button.hide()
        self.progress.setRange(0, 0)  # busy until the first step
        self.eta.setText("Preparing data and model…")
        self._append_log(line)
        self._show_message("")

    def _launch_processes(self, cfg: TrainConfig, line: str, class_texts: dict | None = None) -> None:
        """Run ``cfg`` as one process per GPU; its events come through the same slot as the thread's."""
        cfg.model.device, cfg.gpu_id = self._gpu_device, 0  # process N takes GPU N
        self._begin(cfg, line)
        self._append_log(f"Training as {self._gpus} processes, {cfg.batch_size} images each per step "
                         f"({self._gpus * cfg.batch_size} per step in all). The processes take a few seconds to start.")
        run = ProcessRun(cfg, self._gpus, class_texts=class_texts, parent=self)
        run.event_emitted.connect(self._on_worker_event_emitted)
        run.finished.connect(self._on_process_run_finished)
        self._process_run = run
        try:
            run.start()
        except OSError as exc:
            self._process_run = None
            run.deleteLater()
            self._on_worker_failed(f"The training processes could not start: {exc}", "")
        self._update_controls()

    def _launch(self, job: TrainJob, line: str) -> None:
        self._begin(job.cfg, line)
        worker = TaskWorker(job, name="training", parent=self)
        worker.event_emitted.connect(self._on_worker_event_emitted)
        worker.succeeded.connect(self._on_worker_succeeded)
        worker.failed.connect(self._on_worker_failed)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, TRAINING_SWITCH_INTERVAL_S))
        worker.start()
        self._update_controls()

    def stop(self) -> None:
        if self.busy():
            if self._process_run is not None:
                self._process_run.stop()
            else:
                self._worker.cancel()
            self.stop_button.setEnabled(False)
            self.eta.setText("Stopping… (the run is saved as it stands)")
            self._append_log("Stop requested; saving the run…")
            log.info("training: stop requested")

    # --- worker slots ------------------------------------------------------------------------------
    def _on_worker_event_emitted(self, event: object) -> None:
        # Runs per event on the GUI thread: plain bookkeeping only, no drawing.
        self.plots.on_event(event)
        if isinstance(event, StepEnded):
            self._show_step(event)
        elif isinstance(event, ProgressUpdated):
            self._show_phase(event)
        elif isinstance(event, MessageLogged):
            self._append_log(event.text if event.level == "info" else f"Warning: {event.text}")
        elif isinstance(event, MethodChosen):
            self._append_log(event.reason)
            self.form.show_auto_choice(event.reason)
        elif isinstance(event, TrainStarted):
            self._on_train_started(event)
        elif isinstance(event, EvalEnded):
            self._show_training_resumes(event)
        elif isinstance(event, EpochEnded):
            self._append_log(format_epoch(event, self._run.get("epochs", event.epoch), self._run.get("method", "")))
        elif isinstance(event, CheckpointSaved):
            if event.kind == "latest":
                self._run["saved_step"] = event.step
            else:
                self._append_log(f"Best so far: saved {BEST} (epoch {event.epoch}).")
        elif isinstance(event, TrainEnded):
            self._on_train_ended(event)

    def _show_phase(self, e: ProgressUpdated) -> None:
        self.progress.setRange(0, max(e.total, 1))
        self.progress.setValue(e.done)
        self.eta.setText(self._phase.text(e, time.monotonic()))
        self.eta.setToolTip(phase_help(e.stage))

    def _on_train_started(self, e: TrainStarted) -> None:
        log.info("training started in %s: %s on %s, %d training and %d validation images, %d epochs",
                 e.run_dir, e.method, e.device, e.n_train, e.n_val, e.epochs)
        self._run.update(
            run_dir=e.run_dir,
            method=e.method,  # the method Auto picked, if it was Auto
            epochs=e.epochs,
            total=e.total_steps,
            steps_per_epoch=e.steps_per_epoch,
            t0=None,
            step0=e.start_step,
            step=e.start_step,
            saved_step=None,
        )
        if e.start_step > 0:
            self.plots.load_run(e.run_dir, e.steps_per_epoch, e.start_step)
        self.progress.setRange(0, max(e.total_steps, 1))
        self.progress.setValue(e.start_step)
        self.eta.setText(
            f"epoch {e.start_epoch}/{e.epochs} · step {e.start_step}/{e.total_steps} · validating…"
        )
        self._append_log(
            f"Training {e.method} on {e.device}: {e.n_train} training, {e.n_val} validation images, "
            f"{e.epochs} epochs of {e.steps_per_epoch} steps. Run folder: {e.run_dir}"
        )
        if e.precision:
            self._append_log(f"Precision: {e.precision}.")

    def _show_training_resumes(self, e: EvalEnded) -> None:
        """Validation is done and optimizer steps follow: say so until the next step's numbers come
        (on a CPU the first steps of a full fine-tune can take a while; "validating…" would be stale)."""
        epochs, total = self._run.get("epochs"), self._run.get("total")
        if epochs is None or total is None or e.epoch >= epochs:
            return
        step = self._run.get("step", 0)  # the bar counted validation images meanwhile: back to steps
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        self.eta.setText(f"epoch {e.epoch + 1}/{epochs} · step {step}/{total} · training…")

    def _show_step(self, e: StepEnded) -> None:
        run = self._run
        now = time.monotonic()
        run["step"] = e.step
        if run.get("t0") is None:
            run["t0"], run["step0"] = now, e.step
        total = e.total_steps
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(e.step)
        text = (
            f"epoch {e.epoch}/{run.get('epochs', '?')} · step {e.step}/{total} · "
            f"{e.images_per_s:.{1 if e.images_per_s < 10 else 0}f} img/s"
        )
        done, elapsed = e.step - run["step0"], now - run["t0"]
        if done > 0 and elapsed > 0 and e.step < total:
            text += f" · ETA {format_duration((total - e.step) * elapsed / done)}"
        self.eta.setText(text)

    def _on_train_ended(self, e: TrainEnded) -> None:
        self._run["ended"] = e
        log.info("training ended (%s): %s Run folder: %s", TrainingStatus(e.status).value, e.message, e.run_dir)
        self.plots.redraw()
        status = TrainingStatus(e.status)  # events may carry the plain string value
        if status.finished:
            self.progress.setValue(self.progress.maximum())
            self._append_log(f"{e.message} Run folder: {e.run_dir}")
            if not self._run.get("cv"):
                # Stay here with the final curves; Results scores the run meanwhile, and the user goes
                # there when they choose.
                self.eta.setText("Finished." if status is TrainingStatus.COMPLETED else "Stopped early.")
                self.view_results_button.show()
                self._show_message("Training finished. Press View results to see how the trained model does.")
                self.state.set_run(e.run_dir)
                self.state.post_status(f"Training finished: {e.message} Press View results on the Train screen.")
        elif status is TrainingStatus.CANCELLED:
            step = self._run.get("saved_step")
            if step is not None and not self._run.get("cv"):
                self._resume_dir = e.run_dir
                text = f"Stopped — saved; Resume continues from step {step}."
            elif step is not None:
                text = f"Cross-validation stopped; the current fold is saved in {e.run_dir} (Resume run… continues it)."
            else:
                text = "Stopped before training began; nothing was saved."
            self.eta.setText(text)
            self._append_log(f"{e.message} {text}")
            self.state.post_status(text)
        else:
            self.eta.setText("Training failed.")
            self._append_log(f"Training failed: {e.message}")

    def _on_worker_succeeded(self, outcome: TrainingOutcome) -> None:
        if outcome.summary is not None:  # a cross-validation
            self._report_cv(outcome.summary)
        elif outcome.run.status is TrainingStatus.FAILED:
            self._show_error(outcome.run.message)

    def _on_worker_failed(self, message: str, details: str) -> None:
        self._append_log(f"Error: {message}")
        self.eta.setText("Training failed.")
        self._show_error(message, details)

    def _on_worker_finished(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.deleteLater()
            sys.setswitchinterval(self._switch_interval)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self._update_controls()

    def _on_process_run_finished(self) -> None:
        run, self._process_run = self._process_run, None
        if run is not None:
            run.deleteLater()
            ended = self._run.get("ended")
            if ended is not None and TrainingStatus(ended.status) is TrainingStatus.FAILED:
                self._show_error(ended.message)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self._update_controls()

    def _report_cv(self, summary: dict) -> None:
        monitor = summary.get("monitor") or "val metric"
        mean, std = summary.get("mean", {}).get(monitor), summary.get("std", {}).get(monitor)
        line = f"Cross-validation: {summary.get('n_finished', 0)}/{summary.get('n_splits')} folds finished"
        if mean is not None:
            line += f"; {monitor} {mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
        line += f". Summary: {Path(summary['run_dir']) / CV_SUMMARY_FILE}"
        self._append_log(line)
        self.state.post_status(line)

    # --- button slots ------------------------------------------------------------------------------
    def _on_start_button_clicked(self) -> None:
        self.start()

    def _on_stop_button_clicked(self) -> None:
        self.stop()

    def _on_stop_shortcut_activated(self) -> None:
        self.stop()

    def _on_resume_button_clicked(self) -> None:
        self.resume()

    def _on_view_results_button_clicked(self) -> None:
        self.state.request_screen("results")

    def _on_resume_run_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Resume run", str(runs_root()))
        if folder:
            self.choose_resume_run(folder)

    def choose_resume_run(self, folder: str) -> bool:
        """Make ``folder`` the run Resume continues; False (and a message) if it can't be resumed."""
        step = resumable_step(folder)
        if step is None:
            self._show_message(f"{folder} is not a run folder with {LATEST}.", error=True)
            return False
        self._resume_dir = folder
        self._show_message(f"Resume continues {Path(folder).name} from step {step}.")
        self._update_controls()
        return True

    def _on_state_dataset_changed(self, _dataset: object) -> None:
        self._update_controls()

    def _on_state_model_changed(self, model) -> None:
        if model is not None:
            self.form.set_model_rates(model.recommended_learning_rates)
        elif (self.state.model_spec or "builtin") == "builtin":  # what training then loads (see _config)
            self.form.set_model_rates(BUILTIN_LEARNING_RATES)
        else:
            self.form.set_model_rates({})

    def _on_state_run_changed(self, run_dir: str) -> None:
        if run_dir != self._run.get("run_dir"):  # another run was opened: Results shows that one now
            self.view_results_button.hide()

    # --- helpers -----------------------------------------------------------------------------------
    def _start_problem(self) -> str:
        dataset = self.state.dataset
        if dataset is None:
            return NO_DATASET
        problem = self.form.problem()
        if problem:
            return problem
        if self.form.method.currentData() in CLASS_DATA_METHODS and not dataset.is_classification:
            return f"{METHODS[self.form.method.currentData()][0]} needs class data; for image-text pairs choose another method."
        return ""

    def _update_controls(self) -> None:
        running = self.busy()
        problem = "" if running else self._start_problem()
        self.start_button.setEnabled(not running and not problem)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(not running and bool(self._resume_dir))
        self.resume_run_button.setEnabled(not running)
        self.all_gpus.setEnabled(not running)
        self.form.setEnabled(not running)
        if problem:
            self._show_message(problem, error=problem != NO_DATASET)
            self._problem_shown = problem
        elif self._problem_shown and self.message.text() == self._problem_shown:
            self._show_message("")  # the problem is fixed; leave other messages (e.g. Resume run…) be
        if not problem:
            self._problem_shown = ""

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("error", bool(text) and error)
        self.message.setStyleSheet(f"color: {ERROR if error else MUTED_TEXT};")

    def _append_log(self, line: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {line}")

    def _show_error(self, message: str, details: str = "") -> None:
        show_error(self, message, details)


def _same_path(a: str, b: str) -> bool:
    if not a or not b:
        return False
    norm = lambda p: os.path.normcase(os.path.normpath(os.path.abspath(p)))  # noqa: E731
    return norm(a) == norm(b)


__all__ = ["TrainJob", "TrainScreen", "format_duration", "format_phase"]
