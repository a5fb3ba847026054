"""k-fold cross-validation: one ordinary training run per fold, and a summary over the folds.

The training pool is every image outside the dataset's "test" split (a test split stays unseen).
Folds are stratified by class and, when ``data.group_regex`` is set, keep each patient (group)
inside one fold (``data.splits.kfold_indices``). Fold ``i`` trains on the other folds, validates
on fold ``i``, and is a normal run folder ``<output>/fold_<i>/`` (evaluate, export or WiSE it like
any run). ``<output>/cv_summary.json`` holds each fold's metrics at its best epoch and their mean
and standard deviation; it is rewritten after every fold, so a crash or a cancel leaves a partial
summary (``"complete": false``). With method "auto", each fold and the summary record the method
Auto picked (for the summary: the folds' picks joined by " / " in the rare case that they differ).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipstudio.engine.config import TrainConfig, save_config
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.data.readers import load_dataset_from_config
from clipstudio.engine.data.splits import apply_group_regex, kfold_indices
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import MessageLogged, ShouldStop, TrainingStatus, never_stop
from clipstudio.engine.runs.layout import (
    CV_CONFIG_FILE,
    CV_SUMMARY_FILE,
    default_run_dir,
    fold_dir,
    holds_cross_validation,
    is_run_folder,
)
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.training.trainer import Trainer


def default_cv_dir(method: str) -> Path:
    """A new folder under the user's runs for a cross-validation of ``method``."""
    return default_run_dir(f"{method}-cv")


def cv_pool(dataset: Dataset) -> list[int]:
    """Sample indices cross-validation may use: all but the "test" split."""
    return [i for i, s in enumerate(dataset.samples) if s.split != "test"]


def cv_folds(dataset: Dataset, n_splits: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """(train, validation) dataset indices per fold over the training pool."""
    pool = cv_pool(dataset)
    folds = kfold_indices(dataset.subset(pool), n_splits, seed=seed)
    return [([pool[i] for i in train], [pool[i] for i in held]) for train, held in folds]


def run_cross_validation(
    cfg: TrainConfig,
    callbacks: Sequence[Callable[[object], None]] = (),
    should_stop: ShouldStop = never_stop,
    *,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Train one run per fold (``cfg.cv.n_splits`` folds) and return the summary written to cv_summary.json.

    ``should_stop`` cancels the fold in progress (it saves and can be resumed like any run) and
    starts no further fold; the summary then has ``"complete": false, "cancelled": true``.
    """
    cfg.validate()
    if cfg.resume_from:
        raise ConfigError(
            "resume_from can't be combined with cross-validation; resume one fold's run folder instead."
        )
    k = cfg.cv.n_splits
    if cfg.output:
        root = Path(os.path.abspath(Path(cfg.output).expanduser()))
    else:
        root = default_cv_dir(cfg.method)
    _check_output(root)
    dataset = dataset if dataset is not None else load_dataset_from_config(cfg.data)
    if cfg.data.group_regex:
        dataset = apply_group_regex(dataset, cfg.data.group_regex)
    folds = cv_folds(dataset, k, cfg.data.seed)
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root / CV_CONFIG_FILE)

    def emit(event: object) -> None:
        for callback in callbacks:
            callback(event)

    summary: dict[str, Any] = {
        "n_splits": k,
        "split_seed": cfg.data.seed,
        "method": cfg.method,
        "n_pool": sum(len(held) for _, held in folds),
        "monitor": None,
        "folds": [],
        "mean": {},
        "std": {},
        "complete": False,
        "cancelled": False,
    }
    for i, (train, held) in enumerate(folds, 1):
        if should_stop():
            summary["cancelled"] = True
            break
        emit(MessageLogged("info", f"Fold {i}/{k}: {len(train)} training and {len(held)} validation images."))
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg.output = str(fold_dir(root, i))
        fold_cfg.cv.use_cv = False  # each fold folder records an ordinary run
        try:
            trainer = Trainer(
                fold_cfg,
                callbacks=callbacks,
                should_stop=should_stop,
                dataset=dataset,
                train_indices=train,
                val_indices=held,
            )
            result = trainer.fit()
        except Exception:
            _write(root, summary)  # keep what the finished folds showed
            raise
        # trainer.cfg: method "auto" replaced by what it picked for this fold's training images.
        summary["folds"].append(_fold_row(i, result, trainer.cfg.method, len(train), len(held)))
        summary["method"] = " / ".join(dict.fromkeys(fold["method"] for fold in summary["folds"]))
        summary["monitor"] = summary["monitor"] or result.history.get("monitor_key")
        summary["mean"], summary["std"] = _mean_std(summary["folds"])
        if result.status == TrainingStatus.CANCELLED:
            summary["cancelled"] = True
            break
        _write(root, summary)
    summary["complete"] = not summary["cancelled"] and len(summary["folds"]) == k
    summary["n_finished"] = sum(1 for f in summary["folds"] if TrainingStatus(f["status"]).finished)
    _write(root, summary)
    summary["run_dir"] = str(root)
    return summary


def _check_output(root: Path) -> None:
    if is_run_folder(root):
        raise ConfigError(f"{str(root)!r} is a training run; choose a new folder for the cross-validation.")
    if root.is_file():
        raise ConfigError(f"output {str(root)!r} is a file, not a folder.")
    if holds_cross_validation(root):
        raise ConfigError(f"{str(root)!r} already holds a cross-validation; choose another output folder.")


def _fold_row(fold: int, result, method: str, n_train: int, n_val: int) -> dict[str, Any]:
    """A fold's outcome and its validation metrics at the best epoch (else the last one)."""
    history = result.history or {}
    epochs = history.get("epoch", [])
    best_epoch = history.get("best_epoch")
    at = epochs.index(best_epoch) if best_epoch in epochs else len(epochs) - 1
    metrics = {}
    if at >= 0:
        for key in history.get("val_keys", []):
            values = history.get(key) or []
            value = values[at] if at < len(values) else None
            if value is not None and math.isfinite(value):
                metrics[key] = float(value)
        metrics["train_loss"] = float(history["train_loss"][at])
        metrics["train_acc"] = float(history["train_acc"][at])
    return {
        "fold": fold,
        "run_dir": str(result.run_dir),
        "method": method,
        "status": result.status,
        "n_train": n_train,
        "n_val": n_val,
        "epochs_completed": result.epochs_completed,
        "best_epoch": best_epoch,
        "best_metric": result.best_metric,
        "metrics": metrics,
        "message": result.message,
    }


def _mean_std(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Mean and sample standard deviation (ddof=1; None for one fold) of each metric over the finished folds."""
    finished = [f for f in folds if TrainingStatus(f["status"]).finished]
    keys = sorted({key for f in finished for key in f["metrics"]})
    mean, std = {}, {}
    for key in keys:
        values = np.array([f["metrics"][key] for f in finished if key in f["metrics"]], dtype=np.float64)
        mean[key] = float(values.mean())
        std[key] = float(values.std(ddof=1)) if len(values) > 1 else None
    return mean, std


def _write(root: Path, summary: dict[str, Any]) -> None:
    atomic_write_json(root / CV_SUMMARY_FILE, summary)


__all__ = ["cv_folds", "default_cv_dir", "cv_pool", "run_cross_validation"]
