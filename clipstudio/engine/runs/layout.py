"""Run folders: the names of what a training run leaves behind, and torch-free readers and writers.

The one place that knows a run folder's layout; the GUI imports it at start-up, so it never
imports torch (``load_run_model`` in ``clipstudio.engine.models`` loads the trained model).
All JSON is UTF-8 and written atomically; weights are safetensors::

    <run>/config.json            the TrainConfig (read_run_config)
    <run>/run.json               method, starting model spec, classes and their texts, the starting
                                 image encoder (linear_probe, lock_image, tip_adapter(_f); read_run_info)
    <run>/splits.json            the training and validation image paths
    <run>/history.json           per-epoch lists: train_loss, val_loss, val_acc, lr... (read_history)
    <run>/metrics.jsonl          one line per logging step (read_metrics)
    <run>/class_texts.json       hand-written class texts the run was started with (GUI runs)
    <run>/calibration.json       temperature and operating point fitted on validation by ``eval`` (read_calibration)
    <run>/checkpoint_latest/     model (load_model works on it) + train_state.{json,safetensors}
    <run>/checkpoint_best/       the same for the best epoch by the monitored metric
    <run>/base_model/            linear_probe, tip_adapter(_f): the frozen model (checkpoints hold just the
                                 head or the cache)

A checkpoint is complete once its ``train_state.json`` exists (written last); while a new one is
swapped in, the previous copy is ``<name>.old`` (see ``training.checkpoint``).

Cross-validation folder: ``cv_config.json``, ``cv_summary.json`` and one run folder per fold
(``fold_<i>/``). Sweep folder: ``sweep_summary.json``, ``sweep_summary.md`` and one run (or
cross-validation) folder per config (``run_<i>/``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from clipstudio.engine.config import TrainConfig, load_config
from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.storage.atomic import atomic_write_json, atomic_write_text
from clipstudio.engine.storage.paths import user_data_dir

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
SPLITS_FILE = "splits.json"
CORRECTIONS_FILE = "corrections.csv"  # the dataset corrections a run trained with (only when there were some)
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.jsonl"
CLASS_TEXTS_FILE = "class_texts.json"
CALIBRATION_FILE = "calibration.json"
BASE_MODEL_DIR = "base_model"
RUN_FORMAT = 1

LATEST = "checkpoint_latest"
BEST = "checkpoint_best"
STATE_JSON = "train_state.json"  # written last: its presence marks a complete checkpoint
STATE_TENSORS = "train_state.safetensors"

CV_CONFIG_FILE = "cv_config.json"
CV_SUMMARY_FILE = "cv_summary.json"
SWEEP_SUMMARY_JSON = "sweep_summary.json"
SWEEP_SUMMARY_MD = "sweep_summary.md"


# --- Where runs go ---------------------------------------------------------------------------------


def runs_root() -> Path:
    """The folder new runs go to by default (``<user data>/runs``)."""
    return user_data_dir() / "runs"


def default_run_dir(method: str) -> Path:
    """A new, not yet existing folder under ``runs_root()`` named by the time and ``method``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = runs_root() / f"{stamp}-{method}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def fold_dir(cv_root: str | os.PathLike, fold: int) -> Path:
    """The run folder of cross-validation fold ``fold`` (1-based)."""
    return Path(cv_root) / f"fold_{fold}"


def sweep_run_dir(sweep_root: str | os.PathLike, index: int) -> Path:
    """The folder of sweep run ``index`` (1-based)."""
    return Path(sweep_root) / f"run_{index}"


# --- Run folders -----------------------------------------------------------------------------------


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CLIP Studio training run folder (has run.json and config.json)."""
    path = Path(path)
    return (path / RUN_FILE).is_file() and (path / CONFIG_FILE).is_file()


def list_runs(root: str | os.PathLike | None = None) -> list[Path]:
    """The run folders directly in ``root`` (default: ``runs_root()``), most recently changed first."""
    folder = Path(root) if root is not None else runs_root()
    try:
        found = [(p.stat().st_mtime, p) for p in folder.iterdir() if p.is_dir() and is_run_folder(p)]
    except OSError:  # no runs folder yet, or it can't be read
        return []
    return [p for _mtime, p in sorted(found, key=lambda item: item[0], reverse=True)]


def require_run_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ConfigError when it is not a run folder."""
    path = Path(path)
    if not is_run_folder(path):
        raise ConfigError(f"{str(path)!r} is not a training run folder (no {RUN_FILE} and {CONFIG_FILE}).")
    return path


def holds_cross_validation(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a cross-validation folder (has cv_summary.json)."""
    return (Path(path) / CV_SUMMARY_FILE).is_file()


def holds_sweep(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sweep folder (has sweep_summary.json)."""
    return (Path(path) / SWEEP_SUMMARY_JSON).is_file()


def run_config_path(path: str | os.PathLike) -> Path:
    """The run's config.json (whether or not it exists yet)."""
    return Path(path) / CONFIG_FILE


def read_run_config(path: str | os.PathLike) -> TrainConfig:
    """The TrainConfig the run was started with."""
    return load_config(TrainConfig, run_config_path(require_run_folder(path)))


def read_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of run.json: method, start_model, data_kind, class_names, class_texts, n_train, n_val."""
    path = require_run_folder(path)
    try:
        info = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path / RUN_FILE}: can't be read ({exc}).") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise ConfigError(f"{path / RUN_FILE}: unknown run format.")
    return info


def write_run_info(path: str | os.PathLike, info: dict[str, Any]) -> None:
    atomic_write_json(Path(path) / RUN_FILE, {"format": RUN_FORMAT, **info})


def run_start_model_spec(path: str | os.PathLike) -> str:
    """The model spec training started from (``load_model(spec)`` gives the pre-training weights)."""
    return str(read_run_info(path)["start_model"])


# --- Calibration ---------------------------------------------------------------------------------


def read_calibration(path: str | os.PathLike) -> dict[str, Any] | None:
    """calibration.json: ``temperature``, ``operating_point`` (a dict, or None) and what they were fitted on.

    None when the run has none yet; ConfigError when it can't be read.
    """
    file = Path(path) / CALIBRATION_FILE
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: can't be read ({exc}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: not a calibration file.")
    return data


def write_calibration(path: str | os.PathLike, calibration: dict[str, Any]) -> None:
    atomic_write_json(Path(path) / CALIBRATION_FILE, calibration)


# --- History and step metrics ----------------------------------------------------------------------


def read_history(path: str | os.PathLike) -> dict[str, Any]:
    """history.json ({} before the first epoch ends); ConfigError when it can't be read."""
    file = Path(path) / HISTORY_FILE
    if not file.is_file():
        return {}
    try:
        history = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: can't be read ({exc}).") from None
    if not isinstance(history, dict):
        raise ConfigError(f"{file}: not a training history.")
    return history


def write_history(path: str | os.PathLike, history: dict[str, Any]) -> None:
    atomic_write_json(Path(path) / HISTORY_FILE, history)


def read_metrics(path: str | os.PathLike, up_to_step: int | None = None) -> list[dict[str, Any]]:
    """The step records of metrics.jsonl (epoch, step, loss, lr, images_per_s), oldest first.

    A line cut short by a crash is skipped; ``up_to_step`` drops lines logged after that step.
    """
    file = Path(path) / METRICS_FILE
    if not file.is_file():
        return []
    return [record for _, record in _metric_lines(file, up_to_step)]


def append_metrics_line(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """One JSON line, flushed to disk at once so a crash loses at most the line being written."""
    with open(Path(path) / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Drop lines logged after ``last_step`` (a resumed run repeats those steps) and broken lines."""
    file = Path(path) / METRICS_FILE
    if not file.is_file():
        return
    kept = [line for line, _ in _metric_lines(file, last_step)]
    atomic_write_text(file, "".join(f"{line}\n" for line in kept))


def remove_metrics(path: str | os.PathLike) -> None:
    """Forget the step metrics (a run started afresh in a folder a failed run left)."""
    (Path(path) / METRICS_FILE).unlink(missing_ok=True)


def _metric_lines(file: Path, up_to_step: int | None) -> list[tuple[str, dict[str, Any]]]:
    lines = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a line cut short by a crash
        if up_to_step is None or step <= up_to_step:
            lines.append((line, record))
    return lines


# --- Checkpoints -----------------------------------------------------------------------------------


def find_checkpoint(run_dir: str | os.PathLike, name: str = LATEST) -> Path | None:
    """The complete checkpoint folder ``run_dir/name``, else its ``.old`` copy, else None."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / name, run_dir / f"{name}.old"):
        if (candidate / STATE_JSON).is_file():
            return candidate
    return None


def checkpoint_folder(path: str | os.PathLike, which: str = "best") -> Path:
    """The checkpoint folder to use: ``which="best"`` falls back to latest when there is no best."""
    if which not in ("best", "latest"):
        raise ConfigError(f"which must be 'best' or 'latest' (got {which!r}).")
    path = require_run_folder(path)
    for name in (BEST, LATEST) if which == "best" else (LATEST,):
        found = find_checkpoint(path, name)
        if found is not None:
            return found
    raise ModelError(f"{str(path)!r} holds no finished checkpoint yet.")


def resumable_step(run_dir: str | os.PathLike) -> int | None:
    """The optimizer step a run folder's checkpoint_latest resumes from; None when it can't be resumed.

    A checkpoint whose state can't be read gives 0: resuming it then reports the actual problem.
    """
    if not is_run_folder(run_dir):
        return None
    checkpoint = find_checkpoint(run_dir, LATEST)
    if checkpoint is None:
        return None
    try:
        return int(json.loads((checkpoint / STATE_JSON).read_text(encoding="utf-8"))["state"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
