"""The export's output folder: checked before any work, filled beside it, swapped in at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipstudio.engine.errors import ConfigError


def checked_output_folder(given: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``given`` as an absolute folder we may fill: absent or empty, or replaceable with ``overwrite``."""
    path = Path(os.path.abspath(Path(given).expanduser()))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {given}: is a file; give a folder to export into.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"--output {given}: the folder is not empty; pass --overwrite to replace it.")
    parent = next(p for p in path.parents if p.exists())  # missing folders are created on writing
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--output {given}: can't write to the folder {parent}.")
    return path


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, moved onto it when the block ends without error, else deleted.

    The rename is one step on the same file system: ``target`` never holds half an export.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield stage
        old = None
        if target.exists():  # empty, or replaced with --overwrite (checked before the work began)
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "previous")
        os.replace(stage, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
