"""Decode each image once into a memory-mapped uint8 array, so training never waits on PNG/JPEG/DICOM.

Every image is decoded and cropped to a ``size`` x ``size`` uint8 RGB square by the model's own
``ImagePreprocessing.crop`` (``model.image_preprocessing()``): the pixels its ``preprocess`` sees
before normalising, so training sees what evaluation does. Without one, the shorter side is
resized to ``size`` (bicubic) and the centre square kept.

The store lives in ``cache_dir()/images/<size>px/`` for that default crop, and in
``<size>px-<digest of the crop settings>/`` for any other (e.g. transformers' truncated long side,
torchvision's rounded crop offset):

- ``index.sqlite`` maps an image's ``file_key`` (absolute path, file size, mtime_ns; see
  ``file_index``) to a row, remembers unreadable files with their reason, and holds the store's
  metadata (row size, data file name, next free row).
- ``pixels-<token>.u8`` is an append-only file of fixed-size rows (``size * size * 3`` bytes).

Crash safety: rows are reserved in the index first, then written and fsync'ed, and only then
indexed; a crash leaves at most unreferenced rows, never an indexed row with partial pixels.
Rows are never overwritten, so arrays handed out earlier (also to another process) stay valid.
A corrupt or inconsistent index is discarded with a warning and the store rebuilt.

The returned array is a read-only ``np.memmap`` over one contiguous run of rows. On a repeat
run with unchanged files the cached rows already form that run and the array is a view (no
copying). Otherwise the whole list is written again as a fresh run (cached rows copied, new or
changed images decoded) and the index re-pointed; the superseded rows become dead space in the
data file, which only deleting the folder reclaims. Fancy-indexing the array (a batch) copies
just those rows into RAM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipstudio.engine.cache.file_index import (
    FileKey,
    Progress,
    decode_ahead,
    decode_or_problem,
    discard_database,
    ensure_schema,
    file_key,
    matching_rows,
)
from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.storage.paths import cache_dir

if TYPE_CHECKING:
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

log = logging.getLogger(__name__)

STAGE = "decode images"
_SCHEMA_VERSION = 1
_INDEX_NAME = "index.sqlite"
_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS images ("
    " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " row INTEGER, problem TEXT, decoder TEXT)",
)
_DATA_PATTERN = re.compile(r"pixels-[0-9a-f]+\.u8")
_ROWS_PER_COMMIT = 64  # rows written between fsync + index commit: the most a crash can waste
# load_image's reasons for failures that may pass (locked, unplugged, permissions fixed): never remembered.
_ACCESS_FAILURES = ("file not found", "permission denied", "cannot read the file", "is a folder")


@dataclass
class DecodedImages:
    """Decoded ``size`` x ``size`` crops of the images that could be read, and what happened to the rest."""

    array: np.ndarray  # (N_ok, S, S, 3) uint8, a read-only np.memmap (a plain empty array when N_ok == 0)
    indices: list[int]  # positions in the input list that decoded OK: row i of array = paths[indices[i]]
    problems: list[Problem] = field(default_factory=list)  # unreadable images, with reasons
    n_cached: int = 0  # rows reused from disk
    n_decoded: int = 0
    cancelled: bool = False  # should_stop() was honoured; the fields cover the work done so far


def decode_to_array(
    paths: list[Path],
    size: int,
    *,
    crop: ImagePreprocessing | None = None,
    cache_root: Path | None = None,
    num_workers: int = 2,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> DecodedImages:
    """Centre-cropped ``size`` px uint8 RGB images as one memory-mapped array, decoding only what isn't cached.

    ``crop``: the model's preprocessing (``model.image_preprocessing()``), whose ``crop`` makes each
    square; its ``image_size`` must be ``size``. None: shorter side resized to ``size``, centre square.
    ``cache_root`` defaults to ``cache_dir()/"images"``; nothing is written anywhere else.
    Unreadable images are skipped and listed; cancellation returns the images done so far.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    # deferred: image_preprocessing imports torch
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

    crop = crop if crop is not None else ImagePreprocessing(image_size=size)
    if crop.image_size != size:
        raise ValueError(f"the crop makes {crop.image_size} px squares, not {size} px")
    paths = [Path(p) for p in paths]
    total = len(paths)
    progress = Progress(callback, STAGE, total)
    if not paths:
        progress.update(0, force=True)
        return DecodedImages(array=_empty(size), indices=[], problems=[])

    root = Path(cache_root) if cache_root is not None else cache_dir() / "images"
    folder = root / _folder_name(crop)
    try:
        store = _RowStore.open(folder, size)
    except (OSError, sqlite3.Error) as exc:
        log.warning("Image cache %s can't be used (%s); using a temporary one for this run.", folder, exc)
        store = _RowStore.temporary(size)
    try:
        with contextlib.closing(store):
            return _decode(store, paths, crop, progress, num_workers=num_workers, should_stop=should_stop)
    except sqlite3.Error as exc:  # the index broke mid-run (locked for too long, disk trouble)
        if store.is_temporary:
            raise
        log.warning("Image cache %s failed (%s); decoding into a temporary one for this run.", folder, exc)
    with contextlib.closing(_RowStore.temporary(size)) as store:
        return _decode(store, paths, crop, progress, num_workers=num_workers, should_stop=should_stop)


def _folder_name(crop: ImagePreprocessing) -> str:
    """``<size>px`` for the default crop (the store's name before crops differed), else with the settings' digest."""
    # deferred: image_preprocessing imports torch
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

    settings = crop.crop_settings()
    name = f"{crop.image_size}px"
    if settings == ImagePreprocessing(image_size=crop.image_size).crop_settings():
        return name
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


# --- the work ------------------------------------------------------------------------------------


def _decode(
    store: _RowStore,
    paths: list[Path],
    crop: ImagePreprocessing,
    progress: Progress,
    *,
    num_workers: int,
    should_stop: ShouldStop,
) -> DecodedImages:
    total = len(paths)
    keys = [file_key(p) for p in paths]
    rows, known_problems = store.lookup(keys)
    problems: dict[int, Problem] = {i: Problem(str(paths[i]), r) for i, r in known_problems.items()}

    # The longest prefix of cached images (in input order) whose rows already form one run, ending
    # where new rows would go: those stay in place and the rest of the list is appended after them.
    kept: list[int] = []
    for i in range(total):
        if i in problems:
            continue
        if i not in rows or (kept and rows[i] != rows[kept[-1]] + 1):
            break
        kept.append(i)
    first_pos = (kept[-1] + 1) if kept else 0
    todo = [i for i in range(first_pos, total) if i not in problems]
    run_start = rows[kept[0]] if kept else None
    if not todo and kept:
        progress.update(total, force=True)
        return _result(store, run_start, kept, problems, n_cached=len(kept), n_decoded=0, cancelled=False)

    run_end = rows[kept[-1]] + 1 if kept else None
    start = store.reserve(len(todo), at=run_end) if kept else None
    if start is None:  # the kept run can't be extended in place: write the whole list afresh
        kept, todo = [], [i for i in range(total) if i not in problems]
        start = store.reserve(len(todo))
        run_start = start
    n_copies = sum(i in rows for i in todo)
    if n_copies:
        log.info(
            "Rewriting %d cached images of %s px so this dataset's rows are contiguous.", n_copies, store.size
        )

    written: list[int] = []
    n_cached, n_decoded, cancelled = len(kept), 0, False
    done = len(kept) + len(problems)
    progress.update(done, force=True)
    old = store.read_rows() if n_copies else None

    def row(i: int) -> np.ndarray | Problem:
        """Position ``i``'s row: read back from the store if cached, else decoded."""
        if i in rows:
            return np.asarray(old[rows[i]])
        return decode_or_problem(paths[i], lambda image: _square(crop, image))

    writer = store.writer(start)
    try:
        items = decode_ahead(
            row, todo, workers=num_workers, lookahead=max(8, 4 * num_workers), name="decode-image"
        )
        with contextlib.closing(items):
            for i, outcome in items:
                if should_stop():
                    cancelled = True
                    break
                if isinstance(outcome, Problem):
                    problems[i] = outcome
                    if keys[i] is not None and _is_lasting(outcome.reason):
                        writer.note_problem(keys[i], outcome.reason)
                else:
                    writer.append(keys[i], outcome)
                    written.append(i)
                    if i in rows:
                        n_cached += 1
                    else:
                        n_decoded += 1
                done += 1
                progress.update(done)
        writer.commit()
    finally:
        writer.close()
        store.release(start + len(written), start + len(todo))
    progress.update(done, force=True)
    return _result(store, run_start, kept + written, problems, n_cached, n_decoded, cancelled)


def _square(crop: ImagePreprocessing, image: Image.Image) -> np.ndarray:
    size = crop.image_size
    return np.ascontiguousarray(crop.crop(image), dtype=np.uint8).reshape(size, size, 3)


def _result(
    store: _RowStore,
    run_start: int | None,
    order: list[int],
    problems: dict[int, Problem],
    n_cached: int,
    n_decoded: int,
    cancelled: bool,
) -> DecodedImages:
    array = store.view(run_start, len(order)) if order and run_start is not None else _empty(store.size)
    return DecodedImages(
        array=array,
        indices=list(order),
        problems=[problems[i] for i in sorted(problems)],
        n_cached=n_cached,
        n_decoded=n_decoded,
        cancelled=cancelled,
    )


def _empty(size: int) -> np.ndarray:
    array = np.zeros((0, size, size, 3), dtype=np.uint8)
    array.flags.writeable = False
    return array


def _is_lasting(reason: str) -> bool:
    """A failure of the file's content (remembered until the file changes), not of access to it."""
    return not reason.startswith(_ACCESS_FAILURES)


def _decoder_tag() -> str:
    """Remembered failures are trusted only while the decoders are the same versions."""
    found = []
    for package in ("pillow", "pydicom"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} none")
    return "; ".join(found)


# --- the store -----------------------------------------------------------------------------------


class _RowStore:
    """One folder: the SQLite index and the append-only data file of fixed-size uint8 rows."""

    def __init__(self, folder: Path, size: int, conn: sqlite3.Connection, data_name: str):
        self.folder, self.size, self.conn = folder, size, conn
        self.row_bytes = size * size * 3
        self.data_path = folder / data_name
        self.decoder = _decoder_tag()
        self.is_temporary = False

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    def temporary(cls, size: int) -> _RowStore:
        """A throwaway store in the system temp folder, for when the cache folder can't be used."""
        store = cls.open(Path(tempfile.mkdtemp(prefix="clipstudio-images-")), size)
        store.is_temporary = True
        return store

    @classmethod
    def open(cls, folder: Path, size: int) -> _RowStore:
        """Open (creating if needed) the store; a corrupt one is discarded with a warning and rebuilt."""
        folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                store = cls._connect(folder, size)
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:
                if attempt:
                    raise
                log.warning("Image cache %s is corrupt (%s); discarding it and rebuilding.", folder, exc)
                cls._discard(folder)
                continue
            store._remove_stale_data_files()
            return store
        raise AssertionError("unreachable")

    @classmethod
    def _connect(cls, folder: Path, size: int) -> _RowStore:
        conn = sqlite3.connect(folder / _INDEX_NAME, timeout=30, isolation_level=None)
        try:
            with _transaction(conn):
                ensure_schema(conn, _SCHEMA_VERSION, _TABLES, "image cache")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    meta = {
                        "row_bytes": str(size * size * 3),
                        "data_file": f"pixels-{secrets.token_hex(8)}.u8",
                        "next_row": "0",
                    }
                    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
                store = cls._checked(folder, size, conn, meta)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _checked(cls, folder: Path, size: int, conn: sqlite3.Connection, meta: dict[str, str]) -> _RowStore:
        """The store, if its metadata and data file agree with the index; DatabaseError otherwise."""
        try:
            row_bytes, next_row, data_name = int(meta["row_bytes"]), int(meta["next_row"]), meta["data_file"]
        except (KeyError, ValueError) as exc:
            raise sqlite3.DatabaseError(f"damaged metadata ({exc})") from None
        if row_bytes != size * size * 3 or next_row < 0 or not _DATA_PATTERN.fullmatch(data_name):
            raise sqlite3.DatabaseError("metadata doesn't match this image size")
        store = cls(folder, size, conn, data_name)
        store.data_path.touch(exist_ok=True)
        max_row = conn.execute("SELECT MAX(row) FROM images").fetchone()[0]
        if max_row is not None:
            file_rows = store.data_path.stat().st_size // row_bytes
            if max_row >= min(next_row, file_rows):
                raise sqlite3.DatabaseError(
                    f"index points at row {max_row} but the data file holds {file_rows}"
                )
        return store

    @staticmethod
    def _discard(folder: Path) -> None:
        discard_database(folder / _INDEX_NAME)  # errors other than a missing file: the caller falls back
        for path in folder.glob("pixels-*.u8"):
            with contextlib.suppress(OSError):  # Windows refuses while another array maps it
                path.unlink()

    def _remove_stale_data_files(self) -> None:
        """Data files of discarded stores that couldn't be deleted then (still mapped on Windows)."""
        for path in self.folder.glob("pixels-*.u8"):
            if path.name != self.data_path.name:
                with contextlib.suppress(OSError):
                    path.unlink()

    def close(self) -> None:
        self.conn.close()

    # -- reading ------------------------------------------------------------------------------------
    def lookup(self, keys: list[FileKey | None]) -> tuple[dict[int, int], dict[int, str]]:
        """Input position -> row for unchanged cached images, and -> reason for remembered unreadable ones."""
        rows: dict[int, int] = {}
        problems: dict[int, str] = {}
        for i, (row, problem, decoder) in matching_rows(self.conn, "images", "row, problem, decoder", keys):
            if row is not None:
                rows[i] = int(row)
            elif problem is not None and decoder == self.decoder:
                problems[i] = problem
        return rows, problems

    def read_rows(self) -> np.ndarray:
        """Every complete row of the data file, memory-mapped read-only."""
        n = self.data_path.stat().st_size // self.row_bytes
        return self.view(0, n) if n else _empty(self.size)

    def view(self, start: int, n: int) -> np.ndarray:
        return np.memmap(
            self.data_path,
            dtype=np.uint8,
            mode="r",
            offset=start * self.row_bytes,
            shape=(n, self.size, self.size, 3),
        )

    # -- writing ------------------------------------------------------------------------------------
    def reserve(self, n: int, *, at: int | None = None) -> int | None:
        """Reserve ``n`` rows and return the first; with ``at``, only if the next free row is ``at`` (else None)."""
        self._check_space(n)
        with _transaction(self.conn):
            next_row = int(self.conn.execute("SELECT value FROM meta WHERE key = 'next_row'").fetchone()[0])
            if at is not None and next_row != at:
                return None
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'next_row'", (str(next_row + n),))
        return next_row

    def release(self, used_end: int, reserved_end: int) -> None:
        """Hand back unused reserved rows, if no one has reserved after them (so a resumed run stays contiguous)."""
        if used_end >= reserved_end:
            return
        with contextlib.suppress(sqlite3.Error), _transaction(self.conn):
            self.conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'next_row' AND value = ?",
                (str(used_end), str(reserved_end)),
            )

    def writer(self, start: int) -> _RowWriter:
        return _RowWriter(self, start)

    def _check_space(self, n: int) -> None:
        need = n * self.row_bytes
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return
        if need > free:
            raise ClipStudioError(
                f"The image cache needs {need / 2**30:.1f} GB but {self.folder} has {free / 2**30:.1f} GB free; "
                "free some space or set CLIPSTUDIO_CACHE_DIR to a larger drive."
            )


class _RowWriter:
    """Appends rows from ``start`` on; indexes them only after their bytes are on disk."""

    def __init__(self, store: _RowStore, start: int):
        self.store, self.next = store, start
        self._file = open(store.data_path, "r+b")  # noqa: SIM115 - closed in close()
        self._file.seek(start * store.row_bytes)
        self._rows: list[tuple[str, int, int, int]] = []
        self._problems: list[tuple[str, int, int, str]] = []

    def append(self, key: FileKey | None, pixels: np.ndarray) -> None:
        try:
            self._file.write(pixels.tobytes())
        except OSError as exc:
            raise _write_error(self.store, exc) from None
        if key is not None:
            self._rows.append((*key, self.next))
        self.next += 1
        if len(self._rows) >= _ROWS_PER_COMMIT:
            self.commit()

    def note_problem(self, key: FileKey, reason: str) -> None:
        self._problems.append((*key, reason))

    def commit(self) -> None:
        """fsync the data written so far, then index it in one transaction."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise _write_error(self.store, exc) from None
        conn, decoder = self.store.conn, self.store.decoder
        with _transaction(conn):
            conn.executemany(
                "INSERT OR REPLACE INTO images (path, size, mtime_ns, row, problem, decoder)"
                " VALUES (?, ?, ?, ?, NULL, NULL)",
                self._rows,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO images (path, size, mtime_ns, row, problem, decoder)"
                " VALUES (?, ?, ?, NULL, ?, ?)",
                [(*p, decoder) for p in self._problems],
            )
        self._rows.clear()
        self._problems.clear()

    def close(self) -> None:
        self._file.close()


def _write_error(store: _RowStore, exc: OSError) -> ClipStudioError:
    return ClipStudioError(
        f"The image cache in {store.folder} can't be written ({exc.strerror or exc}); "
        "free some disk space or set CLIPSTUDIO_CACHE_DIR to another drive."
    )


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so concurrent runs reserve distinct rows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
