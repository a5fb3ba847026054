"""A training run as a group of processes: the Train screen's "Use all N GPUs".

``ProcessRun`` starts ``python -m clipstudio train --config FILE --nproc-per-node N``, whose launcher
(``engine.training.distributed_launch.run_processes``) runs N training processes under torchrun's
agent. Only the first process writes the run folder, and nothing else comes back from the group, so
a timer on the GUI thread follows the folder and turns what it finds into the events the in-process
Trainer emits: ``TrainStarted`` when run.json is (re)written, ``StepEnded`` per new metrics.jsonl
line, ``EvalEnded``/``EpochEnded`` per new epoch of history.json, then ``CheckpointSaved`` and
``TrainEnded`` when the launcher exits. The Train screen and its live plots take them as they take
the thread's.

Stop is the launcher's Ctrl+C: SIGINT on POSIX, CTRL_BREAK_EVENT to its process group on Windows.
Every process stops after the same step and the first one saves ``checkpoint_latest`` once.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from clipstudio.engine.config import TrainConfig, save_config
from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.events import (
    CheckpointSaved,
    EpochEnded,
    EvalEnded,
    StepEnded,
    TrainEnded,
    TrainingStatus,
    TrainStarted,
)
from clipstudio.engine.prompts import save_class_texts
from clipstudio.engine.runs.layout import (
    CLASS_TEXTS_FILE,
    HISTORY_FILE,
    LATEST,
    METRICS_FILE,
    RUN_FILE,
    default_run_dir,
    is_run_folder,
    read_history,
    read_metrics,
    read_run_info,
    resumable_step,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 500
INTERRUPTED = 130  # the launcher's exit code when Stop cancelled the run (distributed_launch.INTERRUPTED)
# After Stop, how long the processes get to finish their step and save before they are killed.
STOP_GRACE_S = 120.0


def local_gpu_count() -> int:
    """How many CUDA GPUs torch sees here (0 without CUDA). Call it once torch is imported: it is then quick."""
    import torch  # deferred: the app imports torch in the background at start-up (engine.warm_up)

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launcher_command(config_file: Path, processes: int) -> list[str]:
    """The command that runs ``config_file`` as ``processes`` processes on this machine."""
    return [
        sys.executable, "-m", "clipstudio", "train", "--config", str(config_file),
        "--nproc-per-node", str(processes),
    ]


class ProcessRun(QObject):
    """One training run as ``processes`` processes (one per GPU, or CPU processes with device "cpu").

    Emits the Trainer's events (``event_emitted``) and, once the launcher has exited, ``finished``.
    """

    event_emitted = Signal(object)
    finished = Signal()

    def __init__(
        self,
        cfg: TrainConfig,
        processes: int,
        *,
        class_texts: dict[str, list[str]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.cfg = cfg
        self.processes = processes
        self._class_texts = class_texts or {}
        self._proc: subprocess.Popen | None = None
        self._folder: tempfile.TemporaryDirectory | None = None
        self._output = None  # the launcher's stdout and stderr, for the failing process's error line
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._run_info_stamp: int | None = None  # run.json's mtime before the start: a new one means started
        self._seen: dict[str, tuple[int, int]] = {}  # file -> (mtime_ns, size) when last read
        self._started: TrainStarted | None = None
        self._last_step = 0
        self._last_epoch = 0
        self._initial_sent = False
        self._stop_requested = False
        self._kill_timer = QTimer(self, singleShot=True)
        self._kill_timer.timeout.connect(self._on_kill_timer_timeout)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.output)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Write the config and start the launcher; events follow from the timer."""
        cfg = self.cfg
        if not cfg.output:
            cfg.output = str(default_run_dir(cfg.method))
        if self._class_texts and not cfg.resume_from and not is_run_folder(cfg.output):
            # As engine.training.launch does for an in-process run: the texts travel in the run folder.
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_class_texts(self.run_dir / CLASS_TEXTS_FILE, self._class_texts)
            cfg.prompts.class_texts = str(self.run_dir / CLASS_TEXTS_FILE)
        if cfg.resume_from:
            self._last_step = resumable_step(cfg.resume_from) or 0
        self._run_info_stamp = _mtime(self.run_dir / RUN_FILE)
        self._folder = tempfile.TemporaryDirectory(prefix="clipstudio-app-run-")
        config_file = Path(self._folder.name) / "config.json"
        save_config(cfg, config_file)
        self._output = open(Path(self._folder.name) / "output.txt", "w+", encoding="utf-8")  # noqa: SIM115
        options: dict = {}
        if sys.platform == "win32":  # its own group, so that CTRL_BREAK_EVENT reaches it and not the app
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:  # its own session: a Ctrl+C typed in the app's terminal is not sent to the run twice
            options["start_new_session"] = True
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = launcher_command(config_file, self.processes)
        log.info("training as %d processes: %s", self.processes, " ".join(command))
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT, env=env, **options
        )
        self._timer.start()

    def stop(self) -> None:
        """Ask every process to stop after its current step (the first one saves); returns at once."""
        if not self.running() or self._stop_requested:
            return
        self._stop_requested = True
        log.info("training as %d processes: stop requested", self.processes)
        if sys.platform == "win32":
            self._proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            self._proc.send_signal(signal.SIGINT)
        self._kill_timer.start(int(STOP_GRACE_S * 1000))

    def wait(self, timeout_s: float) -> bool:
        """Block until the launcher exits (killing it after ``timeout_s``), then report the end; True if it ended in time."""
        if self._proc is None:
            return True
        in_time = True
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            in_time = False
            self._kill()
        self._on_timer_timeout()
        return in_time

    # --- following the run folder ------------------------------------------------------------------
    def _on_timer_timeout(self) -> None:
        if self._proc is None:
            return
        code = self._proc.poll()
        try:
            self._follow()
        except (ClipStudioError, OSError, ValueError) as exc:  # a file caught mid-write: next time
            log.debug("following %s: %s", self.run_dir, exc)
        if code is not None:
            self._end(code)

    def _follow(self) -> None:
        if self._started is None:
            stamp = _mtime(self.run_dir / RUN_FILE)
            if stamp is None or stamp == self._run_info_stamp:
                return
            self._start_event()
        # Steps first: history.json gains an epoch before the next epoch's steps are logged, so reading
        # it second never misses the epoch those steps follow. The events then go out in the order the
        # Trainer emitted them (each epoch's validation after its steps), as the plots place them.
        steps = self._new_steps() if self._changed(METRICS_FILE) else []
        history = {}
        if self._changed(HISTORY_FILE):
            try:
                history = read_history(self.run_dir)
            except ClipStudioError:  # caught mid-write: read it next time, and send the steps now
                self._seen.pop(HISTORY_FILE, None)
        for epoch, events in self._epoch_events(history):
            while steps and steps[0].epoch <= epoch:
                self.event_emitted.emit(steps.pop(0))
            for event in events:
                self.event_emitted.emit(event)
        for step in steps:
            self.event_emitted.emit(step)

    def _new_steps(self) -> list[StepEnded]:
        steps = []
        for record in read_metrics(self.run_dir):
            step = int(record.get("step", 0))
            if step <= self._last_step:
                continue
            self._last_step = step
            steps.append(StepEnded(
                epoch=int(record["epoch"]),
                step=step,
                total_steps=self._started.total_steps,
                loss=float(record["loss"]),
                lr=float(record["lr"]),
                images_per_s=float(record.get("images_per_s", 0.0)),
            ))
        return steps

    def _start_event(self) -> None:
        info = read_run_info(self.run_dir)
        steps_per_epoch = max(int(info["steps_per_epoch"]), 1)
        total = int(info["total_steps"])
        device = self.cfg.model.device
        where = f"{self.processes} GPUs" if device != "cpu" else f"{self.processes} CPU processes"
        start_step = self._last_step
        self._last_epoch = start_step // steps_per_epoch
        self._initial_sent = start_step > 0  # a resumed run's start is in the past curves already
        self._started = TrainStarted(
            run_dir=str(self.run_dir),
            method=str(info.get("method", self.cfg.method)),
            epochs=max(total // steps_per_epoch, 1),
            steps_per_epoch=steps_per_epoch,
            total_steps=total,
            n_train=int(info.get("n_train", 0)),
            n_val=int(info.get("n_val", 0)),
            device=where,
            start_epoch=self._last_epoch + 1,
            start_step=start_step,
        )
        self.event_emitted.emit(self._started)

    def _epoch_events(self, history: dict) -> list[tuple[int, list[object]]]:
        """(epoch, its events) for each epoch of ``history`` not yet reported; epoch 0: the starting model."""
        keys = history.get("val_keys", [])
        found: list[tuple[int, list[object]]] = []
        if history.get("initial") and not self._initial_sent:
            self._initial_sent = True
            found.append((0, [EvalEnded(epoch=0, metrics=_finite_pairs(history["initial"], keys))]))
        for i, epoch in enumerate(history.get("epoch", [])):
            if epoch <= self._last_epoch:
                continue
            self._last_epoch = epoch
            metrics = {key: history[key][i] for key in keys if i < len(history.get(key, []))}
            pairs = _finite_pairs(metrics, keys)
            wall = history.get("wall_time", [])
            seconds = wall[i] - (wall[i - 1] if i > 0 else 0.0) if i < len(wall) else 0.0
            ended = EpochEnded(
                epoch=epoch,
                train_loss=float(history["train_loss"][i]),
                train_acc=float(history["train_acc"][i]),
                val_loss=metrics.get("val_loss"),
                val_acc=metrics.get("val_acc"),
                val_balanced_acc=metrics.get("val_balanced_acc"),
                val_mean_recall=metrics.get("val_mean_recall"),
                lr=float(history["lr"][i]),
                seconds=max(float(seconds), 0.0),
            )
            found.append((epoch, [EvalEnded(epoch=epoch, metrics=pairs), ended] if pairs else [ended]))
        return found

    def _changed(self, name: str) -> bool:
        file = self.run_dir / name
        try:
            stat = file.stat()
        except OSError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._seen.get(name) == stamp:
            return False
        self._seen[name] = stamp
        return True

    # --- the end -----------------------------------------------------------------------------------
    def _end(self, code: int) -> None:
        self._timer.stop()
        self._kill_timer.stop()
        output = self._read_output()
        self._proc = None
        saved = resumable_step(self.run_dir) if is_run_folder(self.run_dir) else None
        if saved is not None:
            self.event_emitted.emit(CheckpointSaved(
                path=str(self.run_dir / LATEST), kind="latest", epoch=self._last_epoch, step=saved
            ))
        history = _history_or_empty(self.run_dir)
        best = history.get("best_metric")
        if code == 0:
            epochs = self._started.epochs if self._started else self.cfg.epochs
            early = len(history.get("epoch", [])) < epochs
            status = TrainingStatus.EARLY_STOPPED if early else TrainingStatus.COMPLETED
            message = "Stopped early: validation stopped improving." if early else "Training completed."
        elif code == INTERRUPTED:
            status, message = TrainingStatus.CANCELLED, "Stopped."
        else:
            status, message = TrainingStatus.FAILED, _error_line(output) or f"the processes ended with code {code}"
        log.info("training as %d processes ended with code %d", self.processes, code)
        if code not in (0, INTERRUPTED):
            log.info("its output:\n%s", output[-4000:])
        self.event_emitted.emit(TrainEnded(
            status=status,
            run_dir=str(self.run_dir),
            best_metric=best if isinstance(best, float) and math.isfinite(best) else None,
            message=message,
        ))
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        self.finished.emit()

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        text = self._output.read()
        self._output.close()
        self._output = None
        return text

    def _kill(self) -> None:
        """The processes did not stop in time: end the launcher and the processes it started."""
        if self._proc is None or self._proc.poll() is not None:
            return
        log.warning("training as %d processes did not stop in time: ending them", self.processes)
        if sys.platform == "win32":
            self._proc.kill()
        else:
            os.killpg(self._proc.pid, signal.SIGKILL)  # its own session: the workers are in its group
        self._proc.wait()

    def _on_kill_timer_timeout(self) -> None:
        self._kill()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _finite_pairs(metrics: dict, keys: list[str]) -> tuple[tuple[str, float], ...]:
    pairs = []
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            pairs.append((key, float(value)))
    return tuple(pairs)


def _history_or_empty(run_dir: Path) -> dict:
    try:
        return read_history(run_dir)
    except ClipStudioError:
        return {}


def _error_line(output: str) -> str:
    """The run's one-line error, in plain words: the first process's own ("clipstudio: error: training
    failed: ..." or "clipstudio: error: ..."), or the launcher's about another process or a signal
    ("clipstudio: error: process 1 failed: ..."), which it prints only when no process printed it."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("clipstudio: error: "):
            return line.removeprefix("clipstudio: error: ").removeprefix("training failed: ")
    return ""


__all__ = ["ProcessRun", "launcher_command", "local_gpu_count"]
