"""What the app remembers between sessions: window geometry and state, recent datasets and runs,
the training preset, and the folder file dialogs last used.

Only that (labelme's rule): real settings live in readable JSON configs in run folders. An INI file
rather than the Windows registry, so it's readable, and so tests can redirect it with
``QSettings.setPath(IniFormat, UserScope, folder)``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths
from PySide6.QtWidgets import QMainWindow

ORGANIZATION = "CLIP Studio"
APPLICATION = "CLIP Studio"
MAX_RECENT = 10

RECENT_DATASETS = "recent/datasets"
RECENT_RUNS = "recent/runs"
TRAIN_PRESET = "train/preset"
TRAIN_ADVANCED_OPEN = "train/advanced_open"
LAST_DIALOG_FOLDER = "dialogs/last_folder"


def _normalise(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def short_name(path: str) -> str:
    """"parent/folder" for a path: many datasets share a last name (every MedMNIST set is "folders")."""
    parts = Path(_normalise(path)).parts
    return str(Path(*parts[-2:])) if len(parts) > 2 else path


def documents_folder() -> str:
    """The user's Documents folder, else the home folder."""
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return found if found and os.path.isdir(found) else str(Path.home())


def _same(a: str, b: str) -> bool:
    if sys.platform == "win32":
        return os.path.normcase(a) == os.path.normcase(b)
    return a == b


class AppSettings:
    """A thin wrapper over ``QSettings`` for the few things the window remembers."""

    def __init__(self) -> None:
        self._qs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)

    @property
    def file_name(self) -> str:
        return self._qs.fileName()

    def sync(self) -> None:
        self._qs.sync()

    # -- window -------------------------------------------------------------------------------------
    def save_window(self, window: QMainWindow) -> None:
        self._qs.setValue("window/geometry", window.saveGeometry())
        self._qs.setValue("window/state", window.saveState())
        self._qs.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock/toolbar state; False when nothing was saved yet."""
        geometry = self._qs.value("window/geometry")
        state = self._qs.value("window/state")
        restored = isinstance(geometry, QByteArray) and window.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            window.restoreState(state)
        return bool(restored)

    # -- training form ------------------------------------------------------------------------------
    def train_preset(self) -> str:
        """The training preset last chosen ("" when none was saved)."""
        return str(self._qs.value(TRAIN_PRESET, "") or "")

    def set_train_preset(self, name: str) -> None:
        self._qs.setValue(TRAIN_PRESET, name)
        self._qs.sync()

    def train_advanced_open(self) -> bool:
        """Whether the Train screen's "Advanced settings" were left open (closed by default)."""
        value = self._qs.value(TRAIN_ADVANCED_OPEN, False)
        return value is True or str(value).lower() == "true"  # INI files give booleans back as text

    def set_train_advanced_open(self, open_: bool) -> None:
        self._qs.setValue(TRAIN_ADVANCED_OPEN, bool(open_))
        self._qs.sync()

    # -- file dialogs ---------------------------------------------------------------------------------
    def dialog_folder(self) -> str:
        """Where an open or save dialog starts: the folder last used in one, else the user's Documents."""
        last = str(self._qs.value(LAST_DIALOG_FOLDER, "") or "")
        return last if last and os.path.isdir(last) else documents_folder()

    def dialog_path(self, file_name: str) -> str:
        """``file_name`` in ``dialog_folder()``: the suggested path of a save dialog."""
        return str(Path(self.dialog_folder()) / file_name)

    def remember_dialog_path(self, path: str) -> None:
        """Remember the folder of a file (or a folder) the user chose in a dialog."""
        if not path:
            return
        path = _normalise(path)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        self._qs.setValue(LAST_DIALOG_FOLDER, folder)
        self._qs.sync()

    # -- recent paths ---------------------------------------------------------------------------
    def recent_datasets(self) -> list[str]:
        """Recently opened dataset folders/files, newest first; missing ones are dropped."""
        return self._recent(RECENT_DATASETS)

    def add_recent_dataset(self, path: str) -> None:
        self._add_recent(RECENT_DATASETS, path)

    def recent_runs(self) -> list[str]:
        """Recently opened or trained run folders, newest first; missing ones are dropped."""
        return self._recent(RECENT_RUNS)

    def add_recent_run(self, path: str) -> None:
        self._add_recent(RECENT_RUNS, path)

    def clear_recent(self, key: str) -> None:
        self._qs.remove(key)

    def _read_list(self, key: str) -> list[str]:
        value = self._qs.value(key)
        if value is None:
            return []
        if isinstance(value, str):  # INI files give a one-item list back as a plain string
            return [value] if value else []
        return [str(v) for v in value if v]

    def _recent(self, key: str) -> list[str]:
        paths = self._read_list(key)
        existing = [p for p in paths if os.path.exists(p)]
        if existing != paths:
            self._write_list(key, existing)
        return existing

    def _add_recent(self, key: str, path: str) -> None:
        path = _normalise(path)
        paths = [p for p in self._read_list(key) if not _same(p, path)]
        self._write_list(key, [path, *paths][:MAX_RECENT])

    def _write_list(self, key: str, paths: list[str]) -> None:
        if paths:
            self._qs.setValue(key, paths)
        else:
            self._qs.remove(key)
        self._qs.sync()
