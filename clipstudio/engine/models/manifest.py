"""``clipstudio_model.json``: the file that marks a folder as a saved CLIP Studio model and names its kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipstudio.engine.errors import ModelError

MANIFEST_NAME = "clipstudio_model.json"
FORMAT_VERSION = 1


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a saved model folder, as a dict with at least ``kind``."""
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"Can't read {path}: {exc}.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str):
        raise ModelError(f"{path} does not name a model kind.")
    try:
        version = int(manifest.get("format_version", 1))
    except (TypeError, ValueError):
        raise ModelError(f"{path} has an invalid format_version.") from None
    if version > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer CLIP Studio; update CLIP Studio to load it.")
    return manifest
