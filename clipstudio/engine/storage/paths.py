"""Where CLIP Studio's own files live: bundled resources, caches and user data."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
