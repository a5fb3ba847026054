"""Run folders: what a training run leaves behind, and how to load a model from one.

Layout (all JSON is UTF-8, written atomically; weights are safetensors)::

    <run>/config.json            the TrainConfig (load with read_run_config)
    <run>/run.json               method, starting model spec, classes and their texts, split sizes
    <run>/splits.json            the training and validation image paths
    <run>/history.json           per-epoch lists: train_loss, train_acc, val_loss, val_acc, lr, wall_time...
    <run>/metrics.jsonl          one line per logging step
    <run>/checkpoint_latest/     model (load_model works on it) + train_state.{json,safetensors}
    <run>/checkpoint_best/       the same for the best epoch by the monitored metric
    <run>/base_model/            linear_probe only: the frozen model (checkpoints hold just the head)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.training.checkpoint import BEST, LATEST, find_checkpoint
from clipstudio.engine.config import TrainConfig, load_config
from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.models.base import ImageTextModel

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
SPLITS_FILE = "splits.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.jsonl"
RUN_FORMAT = 1


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CLIP Studio training run folder (has run.json and config.json)."""
    path = Path(path)
    return (path / RUN_FILE).is_file() and (path / CONFIG_FILE).is_file()


def _require_run(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not is_run_folder(path):
        raise ConfigError(f"{str(path)!r} is not a training run folder (no {RUN_FILE} and {CONFIG_FILE}).")
    return path


def read_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of run.json: method, start_model, data_kind, class_names, class_texts, n_train, n_val."""
    path = _require_run(path)
    try:
        info = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path / RUN_FILE}: can't be read ({exc}).") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise ConfigError(f"{path / RUN_FILE}: unknown run format.")
    return info


def write_run_info(path: Path, info: dict[str, Any]) -> None:
    atomic_write_json(path / RUN_FILE, {"format": RUN_FORMAT, **info})


def read_run_config(path: str | os.PathLike) -> TrainConfig:
    """The TrainConfig the run was started with."""
    return load_config(TrainConfig, _require_run(path) / CONFIG_FILE)


def run_start_model_spec(path: str | os.PathLike) -> str:
    """The model spec training started from (``load_model(spec)`` gives the pre-training weights)."""
    return str(read_run_info(path)["start_model"])


def read_history(path: str | os.PathLike) -> dict[str, Any]:
    """history.json ({} before the first epoch ends)."""
    file = Path(path) / HISTORY_FILE
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))


def write_history(path: Path, history: dict[str, Any]) -> None:
    atomic_write_json(path / HISTORY_FILE, history)


def append_metrics_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, flushed to disk at once so a crash loses at most the line being written."""
    with open(path / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after ``last_step`` (a resumed run repeats those steps)."""
    file = path / METRICS_FILE
    if not file.is_file():
        return
    kept = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut short by a crash
    from clipstudio.engine.storage.atomic import atomic_write_text

    atomic_write_text(file, "".join(f"{line}\n" for line in kept))


def checkpoint_folder(path: str | os.PathLike, which: str = "best") -> Path:
    """The checkpoint folder to use: ``which="best"`` falls back to latest when there is no best."""
    if which not in ("best", "latest"):
        raise ConfigError(f"which must be 'best' or 'latest' (got {which!r}).")
    path = _require_run(path)
    names = (BEST, LATEST) if which == "best" else (LATEST,)
    for name in names:
        found = find_checkpoint(path, name)
        if found is not None:
            return found
    raise ModelError(f"{str(path)!r} holds no finished checkpoint yet.")


def load_run_model(path: str | os.PathLike, which: str = "best", device: str = "auto") -> ImageTextModel:
    """The trained model of a run: checkpoint_best if present, else checkpoint_latest.

    Linear-probe runs give a ``LinearProbeModel``: the frozen model plus the trained class head.
    """
    from clipstudio.engine.models import load_model_folder, resolve_device

    path = Path(path)
    info = read_run_info(path)
    folder = checkpoint_folder(path, which)
    target = resolve_device(device)
    if info.get("method") == "linear_probe":
        from clipstudio.engine.training.methods.linear_probe import BASE_MODEL_DIR

        base = load_model_folder(path / BASE_MODEL_DIR, target)
        return LinearProbeModel.from_checkpoint(base, folder)
    return load_model_folder(folder, target)


class LinearProbeModel(ImageTextModel):
    """A frozen model plus a trained linear class head; encoding is the frozen model's.

    ``class_embeddings(names)`` gives the head's rows for those classes, which take the place of
    the prompt-ensemble class embeddings in zero-shot classification.
    """

    kind = "linear_probe"

    def __init__(self, base: ImageTextModel, weight: np.ndarray, class_names: list[str]):
        self.base = base
        w = np.asarray(weight, dtype=np.float32)
        self.head = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        self.class_names = list(class_names)

    @classmethod
    def from_checkpoint(cls, base: ImageTextModel, folder: Path) -> LinearProbeModel:
        from clipstudio.engine.training.methods.linear_probe import load_head

        weight, names, _ = load_head(folder)
        return cls(base, weight.numpy(), names)

    def class_embeddings(self, class_names: list[str]) -> np.ndarray | None:
        """(C, D) L2-normalised head rows in the order given, or None if a class was not trained."""
        index = {name: i for i, name in enumerate(self.class_names)}
        if any(name not in index for name in class_names):
            return None
        return self.head[[index[name] for name in class_names]].copy()

    # Everything else is the frozen model's.
    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def logit_scale(self) -> float:
        return self.base.logit_scale

    @property
    def max_text_tokens(self) -> int:
        return self.base.max_text_tokens

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, device) -> LinearProbeModel:
        self.base.to(device)
        return self

    def preprocess(self, images):
        return self.base.preprocess(images)

    def encode_images(self, pixel_values):
        return self.base.encode_images(pixel_values)

    def encode_texts(self, texts):
        return self.base.encode_texts(texts)

    def count_tokens(self, texts):
        return self.base.count_tokens(texts)

    def fingerprint(self) -> str:
        return self.base.fingerprint()  # image embeddings are the frozen model's

    def image_input_spec(self):
        return self.base.image_input_spec()

    def save(self, folder: str | Path) -> Path:
        """The frozen model (loadable with load_model) plus the head files beside it."""
        import torch as _torch

        from clipstudio.engine.training.methods.linear_probe import save_head

        folder = Path(folder)
        self.base.save(folder)
        save_head(folder, _torch.from_numpy(self.head), self.class_names, self.logit_scale)
        return folder
