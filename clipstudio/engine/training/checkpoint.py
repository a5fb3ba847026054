"""Checkpoint folders, swapped in atomically, and the training state as safetensors + JSON.

A checkpoint is a folder (``checkpoint_latest``, ``checkpoint_best``) holding the model exactly
as ``ImageTextModel.save`` writes it, so ``load_model(<checkpoint>)`` works on it, plus the
training state: ``train_state.safetensors`` (every tensor: optimizer moments, RNG states...) and
``train_state.json`` (everything else). Nothing is pickled.

Writing: the whole new folder is built beside the old one (``<name>.tmp-<pid>``), then the old
folder is renamed to ``<name>.old``, the new one renamed into place and ``.old`` deleted. No
step renames onto an existing folder (Windows can't), and a crash at any point leaves a complete
checkpoint under ``<name>`` or ``<name>.old``; ``runs.layout.find_checkpoint`` looks in both.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import STATE_JSON, STATE_TENSORS
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.safetensors_io import save_safetensors

STATE_FORMAT = 1


def write_checkpoint_folder(final: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` to fill a new folder, then swap it in for ``final``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    old = final.with_name(f"{final.name}.old")
    # Left by a killed run (half written, or complete but never swapped in): never loaded, only
    # taking disk space, which the copy about to be written may need.
    for stale in final.parent.glob(f"{glob.escape(final.name)}.tmp-*"):
        _remove_tree(stale)
    tmp.mkdir()
    try:
        write(tmp)
        if not (tmp / STATE_JSON).is_file():
            raise RuntimeError(f"checkpoint writer left no {STATE_JSON} in {tmp}")
        if final.exists():
            # A leftover .old next to a complete folder is stale; one next to a missing folder is
            # the only good copy and stays until the new folder is in place.
            _remove_tree(old)
            _replace(final, old)
        _replace(tmp, final)
    except BaseException:
        _remove_tree(tmp)
        raise
    _remove_tree(old)
    return final


def _replace(src: Path, dst: Path, attempts: int = 5) -> None:
    """os.replace, retried briefly when Windows reports the folder busy (virus scanner, indexer)."""
    for attempt in range(attempts):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt)


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# --- Training state: nested dicts/lists of plain values and tensors <-> JSON + safetensors --------


def save_train_state(folder: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and numpy arrays anywhere inside) as safetensors + JSON."""
    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    document = {"format": STATE_FORMAT, "state": _flatten(state, tensors)}
    save_safetensors(tensors, folder / STATE_TENSORS)
    atomic_write_json(folder / STATE_JSON, document)


def load_train_state(folder: str | os.PathLike) -> dict[str, Any]:
    """Read what ``save_train_state`` wrote (tensors on CPU)."""
    folder = Path(folder)
    try:
        document = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE_TENSORS)) if (folder / STATE_TENSORS).is_file() else {}
    except (OSError, ValueError, SafetensorError) as exc:
        raise ConfigError(f"{folder}: the training state can't be read ({exc}).") from None
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise ConfigError(f"{folder / STATE_JSON}: unknown training-state format.")
    try:
        return _unflatten(document["state"], tensors)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{folder}: the training state is incomplete ({exc!r}).") from None


def _flatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # No copy: the state is written before training takes another step, and our writer stores
        # tensors that share storage (optimizer moments, tied weights) each in full. Cloning the
        # optimizer state (2x the model) per checkpoint cost a few hundred MB of allocation.
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _flatten(v, tensors) for k, v in obj.items()}
        # Optimizer state is keyed by int parameter ids; JSON would turn them into strings.
        return {"__items__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [_flatten(v, tensors) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"can't store {type(obj).__name__} in a training state")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__items__" in obj:
            return {_hashable(_unflatten(k, tensors)): _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# --- Global random number generators -----------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The global random states (torch, CUDA, numpy, python) for a checkpoint."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state()),
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng_state`` returned (after a JSON + safetensors round trip)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(tuple(state["numpy"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
