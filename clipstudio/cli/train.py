"""``clipstudio train [DATA]``: a fine-tuning run, cross-validation or a sweep, into a run folder.

Exit codes of ``train``: 0 when the run completed or stopped early, 130 when Ctrl+C cancelled it
(checkpoint_latest is saved first; ``--resume-from RUN`` continues it), 1 when it failed (e.g.
the loss became NaN), 2 for user errors (bad flags, data, model), as everywhere in the CLI.

``--nproc-per-node N`` runs the run as N processes through torchrun (docs/DISTRIBUTED.md); started
by torchrun itself (``torchrun -m clipstudio train ...``), each process joins the group, and only
the first one reports.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from tqdm import tqdm

from clipstudio.cli.args import add_train_args, train_config_from_args
from clipstudio.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ProgressBars
from clipstudio.cli.processes import add_process_args, launch
from clipstudio.engine.errors import ClipStudioError, ConfigError
from clipstudio.engine.events import (
    EpochEnded,
    EvalEnded,
    MethodChosen,
    StepEnded,
    TrainEnded,
    TrainingStatus,
    TrainStarted,
    epoch_setting,
)
from clipstudio.engine.runs.layout import default_run_dir

HELP = "fine-tune a model on class folders or image-caption pairs into a run folder"

_EXIT_BY_STATUS = {
    TrainingStatus.COMPLETED: EXIT_OK,
    TrainingStatus.EARLY_STOPPED: EXIT_OK,
    TrainingStatus.CANCELLED: EXIT_INTERRUPTED,
    TrainingStatus.FAILED: EXIT_FAILED,
}


class StopRequest:
    """``should_stop`` for the engine, set by the first Ctrl+C; a second Ctrl+C aborts at once.

    Use as a context manager around training: it installs the handlers (main thread only) and
    restores the previous ones afterwards. Ctrl+Break (SIGBREAK, Windows only) counts as Ctrl+C:
    the app's Stop sends it to a group of training processes there.
    """

    def __init__(self, *, announce: bool = True) -> None:
        self.requested = False
        self._announce = announce  # several processes: only the first says so
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if not self._announce:
            return
        print(
            "\nclipstudio: stopping after the current step and saving (Ctrl+C again to abort)...",
            file=sys.stderr,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in stop_signals():
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def stop_signals() -> list[int]:
    """The signals that mean Stop: SIGINT (Ctrl+C) everywhere, and SIGBREAK (Ctrl+Break) on Windows."""
    ctrl_break = getattr(signal, "SIGBREAK", None)
    return [signal.SIGINT] if ctrl_break is None else [signal.SIGINT, ctrl_break]


class TrainProgress:
    """Training events -> a tqdm step bar on stderr and one line per epoch on stdout.

    Other events (image decoding progress, log messages) go to ``ProgressBars``.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.others = ProgressBars(enabled)
        self._enabled = enabled
        self._bar: Any = None
        self._epochs, self._method = 0, ""
        self._initial = ""
        self._started = False

    def __call__(self, event: object) -> None:
        if isinstance(event, TrainStarted):
            self.on_started(event)
        elif isinstance(event, StepEnded):
            self.on_step(event)
        elif isinstance(event, EpochEnded):
            self.on_epoch(event)
        elif isinstance(event, EvalEnded):
            if event.epoch == 0:  # the starting model, evaluated just before or after TrainStarted
                self._initial = "before training: " + _metrics_text(event.as_dict())
                if self._started:
                    self._write(self._initial)
                    self._initial = ""
        elif isinstance(event, MethodChosen):
            self._write(event.reason)
        elif isinstance(event, TrainEnded):
            self.close()
            self._started = False
        else:
            self.others(event)

    def on_started(self, event: TrainStarted) -> None:
        self.close()
        self._epochs, self._method = event.epochs, event.method
        self._write(
            f"Training ({event.method}) on {event.device}: {event.n_train} training and {event.n_val} "
            f"validation images, {event.epochs} epoch(s) of {event.steps_per_epoch} step(s) -> {event.run_dir}"
        )
        if event.precision:
            self._write(f"Precision: {event.precision}.")
        if self._initial:
            self._write(self._initial)
            self._initial = ""
        self._started = True
        disable = None if self._enabled is None else not self._enabled
        self._bar = tqdm(
            total=event.total_steps,
            initial=event.start_step,
            desc="train",
            unit="step",
            file=sys.stderr,
            disable=disable,
            leave=False,
            dynamic_ncols=True,
        )

    def on_step(self, event: StepEnded) -> None:
        if self._bar is None:
            return
        self._bar.n = event.step
        self._bar.set_postfix(
            epoch=event.epoch, loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", refresh=False
        )
        self._bar.refresh()

    def on_epoch(self, event: EpochEnded) -> None:
        self._write(format_epoch(event, self._epochs, self._method))

    def _write(self, line: str) -> None:
        tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.others.close()


def format_epoch(e: EpochEnded, epochs: int, method: str = "") -> str:
    """One line per epoch: train loss/acc, val loss/acc, balanced accuracy or mean recall, lr (or L2 strength), seconds."""
    parts = [f"epoch {e.epoch}/{epochs}", f"train loss {e.train_loss:.4f} acc {e.train_acc:.3f}"]
    val = e.val_metrics()
    if val:
        parts.append("val " + " ".join(_metric_text(_EPOCH_METRIC_NAMES[k], k, v) for k, v in val.items()))
    parts += [epoch_setting(method, e.lr), f"{e.seconds:.1f} s"]
    return "  ".join(parts)


_METRIC_NAMES = {
    "val_loss": "val loss",
    "val_acc": "val acc",
    "val_balanced_acc": "bal acc",
    "val_mean_recall": "mean R@K",
}
_EPOCH_METRIC_NAMES = {  # after "val " on the epoch line
    "val_loss": "loss",
    "val_acc": "acc",
    "val_balanced_acc": "bal acc",
    "val_mean_recall": "mean R@K",
}


def _metric_text(name: str, key: str, value: float) -> str:
    return f"{name} {value:.4f}" if "loss" in key else f"{name} {value:.3f}"


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(
        _metric_text(name, key, metrics[key]) for key, name in _METRIC_NAMES.items() if metrics.get(key) is not None
    )


# ---------------------------------------------------------------- train


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help=HELP,
        description="Fine-tune a model. Explicit flags override --config; Ctrl+C stops after the current "
                    "step, saves checkpoint_latest and exits 130 (continue with --resume-from RUN).",
    )
    add_train_args(p)
    add_process_args(p, "train with N processes on this machine, one per GPU (or N CPU processes); the batch "
                        "size is per process, so each step sees N x batch-size images")


def run(args: argparse.Namespace) -> int:
    cfg = train_config_from_args(args)
    if not cfg.data.path:
        raise ConfigError("DATA is required (the first argument, or data.path in a --config file, "
                          "or --resume-from RUN).")
    from clipstudio.engine.training import distributed  # deferred: torch; --help stays instant
    from clipstudio.engine.training.launch import TrainingKind, train  # deferred: torch

    worker = distributed.launched_by_torchrun()
    if args.nproc_per_node and not worker:
        return _launch_processes(cfg, args)
    if worker:
        if args.multi_config or cfg.cv.use_cv:
            raise ConfigError("Several processes train one run; sweeps and cross-validation run in one process.")
        ranks, cfg.gpu_id = distributed.join_process_group(cfg.model.device, cfg.gpu_id)
        # Every process must name the same run folder; the first one's choice holds.
        cfg.output = distributed.from_first_process(cfg.output or str(default_run_dir(cfg.method)))
    main = not worker or ranks.is_main
    progress = TrainProgress() if main else TrainProgress(enabled=False)
    finished = False
    try:
        with StopRequest(announce=main) as stop:
            outcome = train(cfg, sweep=args.multi_config, callbacks=[progress] if main else [], should_stop=stop)
        finished = True
    except Exception as exc:
        if worker:  # torchrun reports this one line as the run's error
            distributed.record_error(str(exc) if isinstance(exc, ClipStudioError) else repr(exc))
        raise
    finally:
        progress.close()
        if worker:
            distributed.leave_process_group(finished)
    if worker and outcome.run.status is TrainingStatus.FAILED:  # the first process prints it (_report_run)
        distributed.record_error(outcome.run.message, shown=main)
    if not main:
        return _EXIT_BY_STATUS[outcome.run.status]
    if outcome.kind is TrainingKind.SWEEP:
        return _report_sweep(outcome.summary)
    if outcome.kind is TrainingKind.CROSS_VALIDATION:
        return _report_cv(outcome.summary)
    return _report_run(outcome.run)


def _launch_processes(cfg, args: argparse.Namespace) -> int:
    """``--nproc-per-node N``: the run as N processes under torchrun; their first one reports as usual."""
    from clipstudio.engine.training.distributed_launch import INTERRUPTED, config_command  # deferred: torch

    if args.multi_config:
        raise ConfigError("A sweep runs its configs one after another in one process; drop --nproc-per-node.")
    with config_command(cfg) as command:
        exit_code = launch(args, command, data=cfg.data.path)
    if exit_code == INTERRUPTED:
        print(f"Resume with: clipstudio train --resume-from {cfg.output} --nproc-per-node {args.nproc_per_node}")
    return exit_code


def _report_run(result) -> int:
    history = result.history or {}
    print(f"Run folder: {result.run_dir}")
    if result.best_metric is not None:
        print(
            f"Best {history.get('monitor_key', 'val metric')}: {result.best_metric:.4f} "
            f"(epoch {history.get('best_epoch')})"
        )
    if result.status is TrainingStatus.FAILED:
        print(f"clipstudio: error: training failed: {result.message}", file=sys.stderr)
    else:
        print(result.message)
    if result.status is TrainingStatus.CANCELLED:
        print(f"Resume with: clipstudio train --resume-from {result.run_dir}")
    return _EXIT_BY_STATUS[result.status]


def _report_cv(summary: dict) -> int:
    monitor = summary.get("monitor") or "val metric"
    print(f"Cross-validation folder: {summary['run_dir']}")
    for fold in summary["folds"]:
        best = fold["best_metric"]
        best_text = "-" if best is None else f"{best:.4f}"
        print(
            f"fold {fold['fold']}: {fold['status']}, best {monitor} {best_text} (epoch {fold['best_epoch']})"
        )
    if monitor in summary["mean"]:
        std = summary["std"].get(monitor)
        std_text = "" if std is None else f" ± {std:.4f}"
        print(f"{monitor} over {summary['n_finished']} fold(s): {summary['mean'][monitor]:.4f}{std_text}")
    if summary["cancelled"]:
        print("Cancelled: the summary covers the folds run so far.")
        return EXIT_INTERRUPTED
    return EXIT_OK if summary["n_finished"] == summary["n_splits"] else EXIT_FAILED


def _report_sweep(summary: dict) -> int:
    from clipstudio.engine.training.sweep import summary_markdown  # deferred: torch

    print(f"Sweep folder: {summary['run_dir']}")
    print(summary_markdown(summary).rstrip())
    if summary["cancelled"]:
        return EXIT_INTERRUPTED
    finished = all(TrainingStatus(r["status"]).finished for r in summary["runs"])
    return EXIT_OK if finished else EXIT_FAILED
