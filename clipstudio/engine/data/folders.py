"""Class-folder datasets: ``root/<class>/...`` and ``root/<split>/<class>/...`` (ImageFolder style)."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from clipstudio.engine.data.dataset import SPLIT_NAMES, Dataset, Problem, Sample
from clipstudio.engine.data.images import IMAGE_EXTENSIONS
from clipstudio.engine.errors import DataError

# Folder names accepted as splits (lower case) and the split each one means.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def split_of_folder(name: str) -> str | None:
    """The split a folder name stands for ("valid" -> "val"), or None."""
    return SPLIT_FOLDERS.get(name.strip().lower())


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def visible_subfolders(folder: Path) -> list[Path]:
    """Non-hidden sub-folders (symlinked ones included), sorted by name; unreadable -> []."""
    try:
        with os.scandir(folder) as it:
            found = [Path(e.path) for e in it if not e.name.startswith(".") and _is_dir(e)]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.name)


def iter_images(folder: Path, problems: list[Problem] | None = None) -> Iterator[str]:
    """Absolute, resolved paths of image files anywhere below ``folder``, hidden entries skipped.

    Symlinked folders are followed once each (a loop can't recur), and never up into the folders
    holding ``folder``; unreadable folders and broken links are recorded in ``problems`` when given.
    """
    try:
        start = os.path.realpath(folder)
    except (OSError, ValueError):
        return
    # A link back up to an ancestor (say, the dataset root) would walk the sibling class folders too.
    seen = {key for key in map(_folder_key, Path(start).parents) if key is not None}
    stack = [start]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if problems is not None:
                problems.append(Problem(directory, f"can't read folder: {exc.strerror or exc}"))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
                subdirs.append(os.path.realpath(entry.path) if entry.is_symlink() else entry.path)
            elif is_image_name(entry.name):
                path = _image_file(entry, problems)
                if path is not None:
                    yield path
        stack.extend(reversed(subdirs))


def read_class_folders(folder: Path, source: Path | None = None) -> Dataset:
    """Read ``folder/<class>/*`` or ``folder/<split>/<class>/*``; labels from sorted folder names."""
    root = Path(os.path.realpath(folder))
    problems: list[Problem] = []
    subfolders = visible_subfolders(root)
    loose = _loose_images(root)

    # (split, class name, class folder) triples.
    class_dirs: list[tuple[str | None, str, Path]] = []
    if _is_split_layout(subfolders):
        for split_dir in subfolders:
            split = split_of_folder(split_dir.name)
            loose += _loose_images(split_dir)
            class_dirs += [(split, _class_name(d), d) for d in visible_subfolders(split_dir)]
    else:
        class_dirs = [(None, _class_name(d), d) for d in subfolders]
    problems += [Problem(p, "image is not inside a class folder; skipped") for p in loose]

    found: list[tuple[str | None, str, list[str]]] = []
    for split, name, directory in class_dirs:
        first_new = len(problems)
        images = list(iter_images(directory, problems))
        if images:
            found.append((split, name, images))
        elif not any(p.path == os.path.realpath(directory) for p in problems[first_new:]):
            # (A class folder that can't be listed already has its one problem saying so.)
            problems.append(Problem(str(directory), "empty class folder (no images); not used as a class"))

    class_names = sorted({name for _, name, _ in found})
    if not class_names:
        if loose:
            raise DataError(
                f"{root}: no class folders with images; {len(loose)} image(s) lie directly in it, "
                "but each class needs its own sub-folder (<folder>/<class>/<image>)."
            )
        raise DataError(f"{root}: no images found.")
    if len(class_names) < 2:
        raise DataError(f"{root}: found 1 class folder ({class_names[0]}); classification needs at least 2.")

    index = {name: i for i, name in enumerate(class_names)}
    samples = [
        Sample(path=Path(p), label=index[name], split=split) for split, name, images in found for p in images
    ]
    split_rank = {name: i for i, name in enumerate(SPLIT_NAMES)}
    samples.sort(key=lambda s: (split_rank.get(s.split, -1), s.label, str(s.path)))
    return Dataset(
        root=root,
        format="class_folders",
        samples=samples,
        class_names=class_names,
        problems=problems,
        source=source,
    )


def _is_split_layout(subfolders: list[Path]) -> bool:
    """Every sub-folder is a split name and at least one holds class folders."""
    if not subfolders or not all(split_of_folder(d.name) for d in subfolders):
        return False
    return any(visible_subfolders(d) for d in subfolders)


def _class_name(directory: Path) -> str:
    # macOS stores names decomposed (NFD); normalising makes the same class match across splits.
    return unicodedata.normalize("NFC", directory.name)


def _loose_images(folder: Path) -> list[str]:
    """Image files directly in ``folder`` (not in a sub-folder)."""
    try:
        with os.scandir(folder) as it:
            return sorted(
                e.path for e in it if not e.name.startswith(".") and is_image_name(e.name) and not _is_dir(e)
            )
    except OSError:
        return []


def _folder_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _image_file(entry: os.DirEntry, problems: list[Problem] | None) -> str | None:
    """The resolved path of an image-named entry, or None when it isn't a readable file."""
    try:
        if not entry.is_symlink():
            return entry.path if entry.is_file() else None
        target = Path(entry.path).resolve(strict=True)
        return str(target) if target.is_file() else None
    except (OSError, RuntimeError):
        if problems is not None:
            problems.append(Problem(entry.path, "broken or looping symbolic link; skipped"))
        return None
