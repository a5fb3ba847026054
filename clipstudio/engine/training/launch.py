"""The one way to start training, for the CLI and the GUI alike: a run, a cross-validation or a sweep.

    outcome = train(cfg, callbacks=[on_event], should_stop=lambda: cancel_requested)
    outcome = train(cfg, sweep="lr_sweep.json")          # one run per config of the sweep file

``cfg.cv.use_cv`` makes it a cross-validation (``crossval.py``), a sweep file makes it a sweep
(``sweep.py``, each of whose configs may itself be a cross-validation), else it is one run of the
``Trainer``. Hand-written class texts are written into the new folder (``class_texts.json``) and
the config points at them, so the run folder records the texts that shaped it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.events import ShouldStop, never_stop
from clipstudio.engine.prompts import save_class_texts
from clipstudio.engine.runs.layout import CLASS_TEXTS_FILE, default_run_dir, is_run_folder
from clipstudio.engine.training.crossval import default_cv_dir, run_cross_validation
from clipstudio.engine.training.sweep import default_sweep_dir, run_sweep
from clipstudio.engine.training.trainer import Trainer, TrainResult


class TrainingKind(StrEnum):
    RUN = "run"
    CROSS_VALIDATION = "cross_validation"
    SWEEP = "sweep"


@dataclass(frozen=True)
class TrainingOutcome:
    """What ``train`` did: one run's result, or the summary of a cross-validation or sweep."""

    kind: TrainingKind
    run_dir: Path  # the run folder, or the folder holding the folds / the sweep's runs
    run: TrainResult | None = None  # kind RUN
    summary: dict[str, Any] | None = None  # kinds CROSS_VALIDATION and SWEEP (as written beside the runs)


def training_kind(cfg: TrainConfig, sweep: str | os.PathLike | None = None) -> TrainingKind:
    """Which kind of training ``train(cfg, sweep=sweep)`` starts."""
    if sweep is not None:
        return TrainingKind.SWEEP
    return TrainingKind.CROSS_VALIDATION if cfg.cv.use_cv else TrainingKind.RUN


def train(
    cfg: TrainConfig,
    *,
    sweep: str | os.PathLike | None = None,
    callbacks: Sequence[Callable[[object], None]] = (),
    should_stop: ShouldStop = never_stop,
    dataset: Dataset | None = None,
    class_texts: dict[str, list[str]] | None = None,
) -> TrainingOutcome:
    """Train as ``cfg`` (and the sweep file, if any) says; see the module docstring.

    sweep: a sweep file (JSON array of partial configs laid over ``cfg``).
    dataset: the already-read dataset of ``cfg.data`` (runs and cross-validations; a sweep reads
        each config's own).
    class_texts: class name -> hand-written texts, used instead of the templates for those classes.
    """
    cfg = copy.deepcopy(cfg)  # the caller's config stays as it was given
    kind = training_kind(cfg, sweep)
    if kind is TrainingKind.SWEEP and dataset is not None:
        raise ValueError("a sweep reads each run's dataset from its own config; pass no dataset")
    if class_texts and not cfg.resume_from:
        _record_class_texts(cfg, kind, class_texts)
    if kind is TrainingKind.SWEEP:
        summary = run_sweep(sweep, base=cfg, callbacks=callbacks, should_stop=should_stop)
        return TrainingOutcome(kind, Path(summary["run_dir"]), summary=summary)
    if kind is TrainingKind.CROSS_VALIDATION:
        summary = run_cross_validation(cfg, callbacks, should_stop, dataset=dataset)
        return TrainingOutcome(kind, Path(summary["run_dir"]), summary=summary)
    result = Trainer(cfg, callbacks=callbacks, should_stop=should_stop, dataset=dataset).fit()
    return TrainingOutcome(kind, result.run_dir, run=result)


def _record_class_texts(cfg: TrainConfig, kind: TrainingKind, class_texts: dict[str, list[str]]) -> None:
    """Write the texts into the new folder and point ``cfg.prompts.class_texts`` at them."""
    if not cfg.output:
        if kind is TrainingKind.RUN:
            cfg.output = str(default_run_dir(cfg.method))
        elif kind is TrainingKind.CROSS_VALIDATION:
            cfg.output = str(default_cv_dir(cfg.method))
        else:
            cfg.output = str(default_sweep_dir())
    folder = Path(cfg.output)
    if is_run_folder(folder):
        return  # an existing run: the Trainer refuses to overwrite it, and its texts stay as they were
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLASS_TEXTS_FILE
    save_class_texts(path, class_texts)
    cfg.prompts.class_texts = str(path)


__all__ = ["TrainingKind", "TrainingOutcome", "train", "training_kind"]
