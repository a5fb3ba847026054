"""``clipstudio train`` and ``clipstudio eval``: fine-tuning runs, cross-validation, sweeps, before/after.

Exit codes of ``train``: 0 when the run completed or stopped early, 130 when Ctrl+C cancelled it
(checkpoint_latest is saved first; ``--resume-from RUN`` continues it), 1 when it failed (e.g.
the loss became NaN), 2 for user errors (bad flags, data, model), as everywhere in the CLI.
"""

from __future__ import annotations

import argparse
import io
import signal
import sys
import threading
from typing import Any

from clipstudio.cli.main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, train_config_from_args, write_json
from clipstudio.cli.commands import ProgressBars, embedding_cache, load_data, pick_split
from clipstudio.engine.config import StudioConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import EpochEnded, EvalEnded, StepEnded, TrainEnded, TrainStarted

_EXIT_BY_STATUS = {
    "completed": EXIT_OK,
    "early_stopped": EXIT_OK,
    "cancelled": EXIT_INTERRUPTED,
    "failed": EXIT_FAILED,
}


class StopRequest:
    """``should_stop`` for the engine, set by the first Ctrl+C; a second Ctrl+C aborts at once.

    Use as a context manager around training: it installs the SIGINT handler (main thread only)
    and restores the previous one afterwards.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nclipstudio: stopping after the current step and saving (Ctrl+C again to abort)...",
            file=sys.stderr,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class TrainProgress:
    """Training events -> a tqdm step bar on stderr and one line per epoch on stdout.

    Other events (image decoding progress, log messages) go to ``ProgressBars``.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.others = ProgressBars(enabled)
        self._enabled = enabled
        self._bar: Any = None
        self._epochs = 0
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
        elif isinstance(event, TrainEnded):
            self.close()
            self._started = False
        else:
            self.others(event)

    def on_started(self, event: TrainStarted) -> None:
        from tqdm import tqdm

        self.close()
        self._epochs = event.epochs
        self._write(
            f"Training ({event.method}) on {event.device}: {event.n_train} training and {event.n_val} "
            f"validation images, {event.epochs} epoch(s) of {event.steps_per_epoch} step(s) -> {event.run_dir}"
        )
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
        self._write(format_epoch(event, self._epochs))

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.others.close()


def format_epoch(e: EpochEnded, epochs: int) -> str:
    """One line per epoch: train loss/acc, val loss/acc, balanced accuracy or mean recall, lr, seconds."""
    parts = [f"epoch {e.epoch}/{epochs}", f"train loss {e.train_loss:.4f} acc {e.train_acc:.3f}"]
    val = []
    if e.val_loss is not None:
        val.append(f"loss {e.val_loss:.4f}")
    if e.val_acc is not None:
        val.append(f"acc {e.val_acc:.3f}")
    if e.val_balanced_acc is not None:
        val.append(f"bal acc {e.val_balanced_acc:.3f}")
    if e.val_mean_recall is not None:
        val.append(f"mean R@K {e.val_mean_recall:.3f}")
    if val:
        parts.append("val " + " ".join(val))
    parts += [f"lr {e.lr:.2e}", f"{e.seconds:.1f} s"]
    return "  ".join(parts)


_METRIC_NAMES = {
    "val_loss": "val loss",
    "val_acc": "val acc",
    "val_balanced_acc": "bal acc",
    "val_mean_recall": "mean R@K",
}


def _metrics_text(metrics: dict[str, float]) -> str:
    shown = [(name, metrics[key]) for key, name in _METRIC_NAMES.items() if metrics.get(key) is not None]
    return ", ".join(
        f"{name} {value:.4f}" if "loss" in name else f"{name} {value:.3f}" for name, value in shown
    )


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace, _cfg: StudioConfig | None = None) -> int:
    cfg = train_config_from_args(args)
    if not cfg.data.path:
        raise ConfigError("--data is required (or a --config file with data.path, or --resume-from RUN).")
    progress = TrainProgress()
    try:
        with StopRequest() as stop:
            if args.multi_config:
                return _report_sweep(_sweep(args.multi_config, cfg, progress, stop))
            if cfg.cv.use_cv:
                from clipstudio.engine.training.crossval import run_cross_validation

                return _report_cv(run_cross_validation(cfg, [progress], stop))
            from clipstudio.engine.training.trainer import Trainer

            result = Trainer(cfg, callbacks=[progress], should_stop=stop).fit()
    finally:
        progress.close()
    return _report_run(result)


def _sweep(path: str, cfg, progress, stop) -> dict:
    from clipstudio.engine.training.sweep import run_sweep

    return run_sweep(path, base=cfg, callbacks=[progress], should_stop=stop)


def _report_run(result) -> int:
    history = result.history or {}
    print(f"Run folder: {result.run_dir}")
    if result.best_metric is not None:
        print(
            f"Best {history.get('monitor_key', 'val metric')}: {result.best_metric:.4f} "
            f"(epoch {history.get('best_epoch')})"
        )
    if result.status == "failed":
        print(f"clipstudio: error: training failed: {result.message}", file=sys.stderr)
    else:
        print(result.message)
    if result.status == "cancelled":
        print(f"Resume with: clipstudio train --resume-from {result.run_dir}")
    return _EXIT_BY_STATUS.get(result.status, EXIT_FAILED)


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
    from clipstudio.engine.training.sweep import summary_markdown

    print(f"Sweep folder: {summary['run_dir']}")
    print(summary_markdown(summary).rstrip())
    if summary["cancelled"]:
        return EXIT_INTERRUPTED
    finished = all(r["status"] in ("completed", "early_stopped") for r in summary["runs"])
    return EXIT_OK if finished else EXIT_FAILED


# ---------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.engine.evaluation.before_after import compare_run
    from clipstudio.engine.runs.load import is_run_folder

    if not is_run_folder(args.run):
        raise ConfigError(f"{args.run}: not a training run folder (it has no run.json and config.json).")
    dataset = load_data(cfg)
    part, split_name = pick_split(dataset, cfg.eval.split)
    bars = ProgressBars()
    try:
        result = compare_run(
            args.run,
            part,
            split=split_name,
            wise_alpha=args.wise_alpha,
            ks=tuple(cfg.eval.recall_k),
            cache=embedding_cache(cfg),
            batch_size=cfg.eval.batch_size,
            device=cfg.model.device,
            callback=bars,
        )
    finally:
        bars.close()
    if args.json:
        write_json(args.json, result.to_dict())
    if args.json != "-":
        print(format_before_after(result))
    return EXIT_OK


_HEADLINES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "mean_recall": "mean recall",
}


def format_before_after(result) -> str:
    """The before/after table: headline metrics, change, and per-class recall for class data."""
    out = io.StringIO()
    before, after = result.before_summary, result.after_summary
    unit = "classes" if result.kind == "zeroshot" else "captions"
    count = (
        len(result.before.get("classes", [])) if result.kind == "zeroshot" else result.before.get("n_texts")
    )
    print(f"Before/after on split '{result.split}': {before.get('n')} images, {count} {unit}", file=out)
    print(f"before: {result.before_label}", file=out)
    print(f"after:  {result.after_label}", file=out)
    keys = [k for k in before if k != "n"]
    width = max(18, *(len(_label(k)) for k in keys))
    print(f"\n{'metric':<{width}}  {'before':>7}  {'after':>7}  {'change':>7}", file=out)
    for key in keys:
        b, a = before.get(key), after.get(key)
        change = f"{a - b:+7.3f}" if a is not None and b is not None else f"{'-':>7}"
        print(f"{_label(key):<{width}}  {_num(b)}  {_num(a)}  {change}", file=out)
    if result.kind == "zeroshot" and result.after.get("per_class"):
        classes = result.before["classes"]
        cw = max(width, *(len(c) for c in classes))
        print(f"\n{'recall per class':<{cw}}  {'before':>7}  {'after':>7}", file=out)
        for name in classes:
            rb = result.before["per_class"][name]["recall"]
            ra = result.after["per_class"][name]["recall"]
            print(f"{name:<{cw}}  {_num(rb)}  {_num(ra)}", file=out)
    if result.cancelled:
        print("\n(cancelled: partial results)", file=out)
    return out.getvalue().rstrip()


def _label(key: str) -> str:
    if key in _HEADLINES:
        return _HEADLINES[key]
    direction, _, k = key.partition("_")
    return f"{'image->text' if direction == 'i2t' else 'text->image'} {k}"


def _num(value: float | None) -> str:
    return f"{'-':>7}" if value is None else f"{value:>7.3f}"
