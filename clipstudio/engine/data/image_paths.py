"""Finding the image files an annotation file names, without leaving the dataset folder.

Paths are checked after resolving ``..`` and symlinks, so neither ``../../etc/passwd`` nor a link
can reach outside the dataset root unless the user allows it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class SkipEntry(Exception):
    """An entry can't be used; the message is the reason recorded as its Problem."""


class ImageResolver:
    """Finds the image files entries name, under ``root`` unless outside paths are allowed.

    Each folder is listed once (os.scandir) and entries are checked against the listing, so a
    100k-line index costs a few directory reads, not 100k stat calls.
    """

    def __init__(self, bases: Sequence[Path], root: Path, allow_outside_root: bool = False):
        self.bases = [os.path.abspath(b) for b in bases]
        self.root = os.path.realpath(root)
        self.allow_outside_root = allow_outside_root
        self._root_prefix = os.path.normcase(os.path.join(self.root, ""))
        self._folders: dict[str, tuple[Path, bool, set[str], set[str]]] = {}

    def find(self, value: str, extensions: Sequence[str] = ()) -> Path:
        """The absolute, resolved path of the image ``value`` names; raises SkipEntry with the reason."""
        text = value.strip()
        if os.sep == "/":
            text = text.replace("\\", "/")  # paths written on Windows
        if not text:
            raise SkipEntry("empty image path")
        refused = False
        try:
            for base in self.bases:
                for name in (text, *(text + e for e in extensions)):
                    found = self._lookup(os.path.join(base, name))
                    if found is False:
                        refused = True
                        break
                    if found is not None:
                        return found
        except (OSError, ValueError, RuntimeError):
            raise SkipEntry(f"not a usable file path: {value!r}") from None
        if refused:
            raise SkipEntry(
                f"refused: {value!r} points outside the dataset folder {self.root} "
                "(allow paths outside the dataset root to use it)"
            )
        # repr() for names holding line breaks or other control characters: the reason stays one line.
        raise SkipEntry(f"image not found: {value if value.isprintable() else repr(value)}")

    def _lookup(self, candidate: str) -> Path | None | bool:
        """The file's resolved path, None when missing, False when outside the root and refused."""
        folder, name = os.path.split(candidate)
        if name in ("", ".", ".."):
            return None
        real, inside, files, links = self._folder(folder)
        if not inside and not self.allow_outside_root:
            return False
        if name in files:
            return real / name
        if name not in links and not os.path.isfile(os.path.join(real, name)):
            return None
        # A symlink, or a case-insensitive match: resolve it and check where it really is.
        try:
            target = (real / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not target.is_file():
            return None
        if not self.allow_outside_root and not self._inside(str(target)):
            return False
        return target

    def _folder(self, folder: str) -> tuple[Path, bool, set[str], set[str]]:
        """(real path, inside root, plain file names, symlink names) of a folder, listed once."""
        cached = self._folders.get(folder)
        if cached is None:
            real = os.path.realpath(folder)
            inside = self._inside(real)
            files: set[str] = set()
            links: set[str] = set()
            if inside or self.allow_outside_root:  # never list a folder we'd refuse anyway
                try:
                    with os.scandir(real) as it:
                        for entry in it:
                            if entry.is_symlink():
                                links.add(entry.name)
                            elif entry.is_file():
                                files.add(entry.name)
                except OSError:
                    pass
            cached = self._folders[folder] = (Path(real), inside, files, links)
        return cached

    def _inside(self, real: str) -> bool:
        return os.path.normcase(os.path.join(real, "")).startswith(self._root_prefix)
