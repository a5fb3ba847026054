"""Sweeps: several training runs that differ in a few settings, and one table comparing them.

A sweep file is a JSON array; each element is a partial TrainConfig (nested objects such as
``"early_stopping": {"patience": 3}`` merge key by key) laid over a base config (the CLI's
flags). Unknown keys are rejected by name. The learning-rate sweep of the fine-tuning guide::

    [{"learning_rate": 1e-6}, {"learning_rate": 1.5e-6}, {"learning_rate": 2e-6}]

    clipstudio train DATA --output runs/lr-sweep --epochs 10 --multi-config lr_sweep.json

Run ``i`` (1-based) trains into ``<output>/run_<i>/``, an ordinary run folder (or, with
cross-validation on, a folder of folds). ``<output>/sweep_summary.json`` and ``sweep_summary.md``
list what differs between the runs, each run's best validation metric and its epochs; both are
rewritten after every run, so a cancelled sweep leaves a partial table (``"complete": false``).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clipstudio.engine.config import TrainConfig, from_dict, to_dict
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import MessageLogged, ShouldStop, TrainingStatus, never_stop
from clipstudio.engine.runs.layout import (
    SWEEP_SUMMARY_JSON,
    SWEEP_SUMMARY_MD,
    default_run_dir,
    holds_sweep,
    is_run_folder,
    sweep_run_dir,
)
from clipstudio.engine.storage.atomic import atomic_write_json, atomic_write_text
from clipstudio.engine.storage.text_files import read_json
from clipstudio.engine.training.crossval import run_cross_validation
from clipstudio.engine.training.trainer import Trainer

_SET_BY_SWEEP = ("output",)  # every run's folder is <output>/run_<i>
_NOT_COMPARED = ("output", "resume_from", "schema_version")


def default_sweep_dir() -> Path:
    """A new folder under the user's runs for a sweep."""
    return default_run_dir("sweep")


def load_sweep_configs(path: str | os.PathLike, base: TrainConfig | None = None) -> list[TrainConfig]:
    """The configs of a sweep file: each array element merged over ``base`` (default: the defaults)."""
    path = Path(path)
    items = read_json(path, "sweep file", error=ConfigError)
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: a sweep file must hold a non-empty JSON array of config objects.")
    return [merge_config(base or TrainConfig(), item, where=f"{path}[{i}]") for i, item in enumerate(items)]


def merge_config(base: TrainConfig, changes: Any, *, where: str = "sweep") -> TrainConfig:
    """``base`` with ``changes`` (a partial TrainConfig dict) laid over it; unknown keys raise ConfigError."""
    if not isinstance(changes, dict):
        raise ConfigError(f"{where}: expected a config object, got {type(changes).__name__}.")
    for key in _SET_BY_SWEEP:
        if key in changes:
            raise ConfigError(f"{where}: '{key}' is set by the sweep (each run goes to <output>/run_<i>).")
    merged = _deep_merge(to_dict(base), changes)
    cfg = from_dict(TrainConfig, merged, where=where)
    cfg.validate()
    return cfg


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def config_differences(configs: Sequence[TrainConfig]) -> list[dict[str, Any]]:
    """Per config, the settings (dotted names) whose values are not the same in every config."""
    flat = [_flatten(to_dict(c)) for c in configs]
    keys = sorted({k for f in flat for k in f} - set(_NOT_COMPARED))
    varied = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    return [{k: f.get(k) for k in varied} for f in flat]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def run_sweep(
    configs: Sequence[TrainConfig] | str | os.PathLike,
    *,
    base: TrainConfig | None = None,
    output: str | os.PathLike | None = None,
    callbacks: Sequence[Callable[[object], None]] = (),
    should_stop: ShouldStop = never_stop,
) -> dict[str, Any]:
    """Train every config into ``<output>/run_<i>/`` and return the summary written beside them.

    ``configs``: TrainConfigs, or a sweep file (JSON array of partial configs over ``base``).
    ``output``: the sweep folder; default ``base.output``, else a new folder under the user's runs.
    ``should_stop`` cancels the run in progress (saved, resumable) and starts no further run.
    """
    if isinstance(configs, str | os.PathLike):
        configs = load_sweep_configs(configs, base)
    configs = [copy.deepcopy(c) for c in configs]
    if not configs:
        raise ConfigError("A sweep needs at least one config.")
    for cfg in configs:
        cfg.validate()
    target = output if output is not None else (base.output if base is not None else "")
    root = Path(os.path.abspath(Path(target).expanduser())) if target else default_sweep_dir()
    _check_output(root)
    root.mkdir(parents=True, exist_ok=True)

    def emit(event: object) -> None:
        for callback in callbacks:
            callback(event)

    changes = config_differences(configs)
    summary: dict[str, Any] = {
        "varied": sorted({k for c in changes for k in c}),
        "monitor": None,
        "runs": [],
        "best_run": None,
        "complete": False,
        "cancelled": False,
    }
    for i, (cfg, changed) in enumerate(zip(configs, changes, strict=True), 1):
        if should_stop():
            summary["cancelled"] = True
            break
        name = sweep_run_dir(root, i).name
        described = ", ".join(f"{k}={v}" for k, v in changed.items()) or "base config"
        emit(MessageLogged("info", f"Sweep run {i}/{len(configs)} ({described})."))
        cfg.output = str(sweep_run_dir(root, i))
        cfg.resume_from = None
        try:
            if cfg.cv.use_cv:
                cv = run_cross_validation(cfg, callbacks, should_stop)
                row = _cv_row(name, cfg, changed, cv)
            else:
                result = Trainer(cfg, callbacks=callbacks, should_stop=should_stop).fit()
                row = _run_row(name, cfg, changed, result)
        except Exception:
            _write(root, summary)
            raise
        summary["runs"].append(row)
        summary["monitor"] = summary["monitor"] or row["monitor"]
        summary["best_run"] = _best_run(summary["runs"])
        if row["status"] == TrainingStatus.CANCELLED:
            summary["cancelled"] = True
            break
        _write(root, summary)
    summary["complete"] = not summary["cancelled"] and len(summary["runs"]) == len(configs)
    _write(root, summary)
    summary["run_dir"] = str(root)
    return summary


def _check_output(root: Path) -> None:
    if is_run_folder(root):
        raise ConfigError(f"{str(root)!r} is a training run; choose a new folder for the sweep.")
    if root.is_file():
        raise ConfigError(f"output {str(root)!r} is a file, not a folder.")
    if holds_sweep(root):
        raise ConfigError(f"{str(root)!r} already holds a sweep; choose another output folder.")


def _higher_is_better(cfg: TrainConfig) -> bool:
    return cfg.early_stopping.monitor == "val_acc"


def _run_row(name: str, cfg: TrainConfig, changed: dict, result) -> dict[str, Any]:
    history = result.history or {}
    return {
        "run": name,
        "run_dir": str(result.run_dir),
        "changes": changed,
        "status": result.status,
        "monitor": history.get("monitor_key"),
        "higher_is_better": _higher_is_better(cfg),
        "best_metric": result.best_metric,
        "best_epoch": history.get("best_epoch"),
        "epochs": result.epochs_completed,
        "message": result.message,
    }


def _cv_row(name: str, cfg: TrainConfig, changed: dict, cv: dict[str, Any]) -> dict[str, Any]:
    monitor = cv.get("monitor")
    if cv["cancelled"]:
        status = TrainingStatus.CANCELLED
    else:
        status = TrainingStatus.COMPLETED if cv["complete"] else TrainingStatus.FAILED
    return {
        "run": name,
        "run_dir": cv["run_dir"],
        "changes": changed,
        "status": status,
        "monitor": monitor,
        "higher_is_better": _higher_is_better(cfg),
        "best_metric": cv["mean"].get(monitor) if monitor else None,  # mean over the folds
        "best_metric_std": cv["std"].get(monitor) if monitor else None,
        "best_epoch": None,
        "epochs": [f["epochs_completed"] for f in cv["folds"]],
        "message": f"{cv.get('n_finished', 0)} of {cv['n_splits']} folds finished.",
    }


def _best_run(rows: list[dict[str, Any]]) -> str | None:
    scored = [r for r in rows if r["best_metric"] is not None and math.isfinite(r["best_metric"])]
    if not scored:
        return None
    sign = 1 if scored[0]["higher_is_better"] else -1
    return max(scored, key=lambda r: sign * r["best_metric"])["run"]


def _write(root: Path, summary: dict[str, Any]) -> None:
    atomic_write_json(root / SWEEP_SUMMARY_JSON, summary)
    atomic_write_text(root / SWEEP_SUMMARY_MD, summary_markdown(summary))


def summary_markdown(summary: dict[str, Any]) -> str:
    """The sweep table as Markdown: one row per run, the varied settings as columns."""
    monitor = summary.get("monitor") or "val metric"
    varied = summary.get("varied") or []
    header = ["run", *varied, "status", f"best {monitor}", "best epoch", "epochs"]
    lines = ["# Sweep summary", ""]
    if not summary.get("complete"):
        lines += ["Incomplete: the sweep was cancelled or is still running.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.get("runs", []):
        metric = row["best_metric"]
        text = "-" if metric is None else f"{metric:.4f}"
        if row.get("best_metric_std") is not None:
            text += f" ± {row['best_metric_std']:.4f}"
        if row["run"] == summary.get("best_run"):
            text = f"**{text}**"
        epochs = row["epochs"]
        epochs_text = "/".join(map(str, epochs)) if isinstance(epochs, list) else str(epochs)
        cells = [
            row["run"],
            *(_cell(row["changes"].get(k)) for k in varied),
            row["status"],
            text,
            "-" if row["best_epoch"] is None else str(row["best_epoch"]),
            epochs_text,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if summary.get("best_run"):
        lines += ["", f"Best: {summary['best_run']} (bold)."]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return str(text).replace("|", "\\|")


__all__ = [
    "config_differences",
    "default_sweep_dir",
    "load_sweep_configs",
    "merge_config",
    "run_sweep",
    "summary_markdown",
]
