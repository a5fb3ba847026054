"""Where CLIP Studio's own files live: bundled resources, caches and user data."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the package in a source checkout, under _MEIPASS when frozen."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"


def samples_dir() -> Path:
    """The bundled CC BY 4.0 sample dataset (class folders)."""
    return resources_dir() / "samples"


def user_data_dir() -> Path:
    """Per-user writable folder: runs, logs, caches. ``CLIPSTUDIO_HOME`` overrides it (tests use it)."""
    override = os.environ.get("CLIPSTUDIO_HOME")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "ClipStudio"
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "clipstudio"


def cache_dir() -> Path:
    """Embedding and image caches. ``CLIPSTUDIO_CACHE_DIR`` overrides it."""
    override = os.environ.get("CLIPSTUDIO_CACHE_DIR")
    if override:
        return Path(override)
    return user_data_dir() / "cache"


def dataset_key(dataset_path: str | os.PathLike) -> str:
    """The resolved path that identifies a dataset (the same folder reached two ways is one dataset)."""
    return str(Path(dataset_path).expanduser().resolve())


def dataset_file(folder: str, dataset_path: str | os.PathLike, suffix: str) -> Path:
    """A file the app keeps about one dataset in its own data folder, never in the dataset's:
    ``user_data_dir()/folder/<parent>-<name>-<8 hex of the key>{suffix}``, e.g.
    ``prompts/pneumoniamnist-folders-3f2a9c1e.json``."""
    key = dataset_key(dataset_path)
    path = Path(key)
    readable = _UNSAFE.sub("_", "-".join(p for p in (path.parent.name, path.name) if p)).strip("_") or "dataset"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return user_data_dir() / folder / f"{readable[:60]}-{digest}{suffix}"
