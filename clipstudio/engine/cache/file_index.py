"""What the on-disk caches share: a file's identity, an SQLite index keyed by it, and decoding ahead.

A cached entry belongs to an image file only while the file's absolute path, size and
modification time are those it was stored with (``file_key``); each cache keeps them in an SQLite
table with ``path``, ``size`` and ``mtime_ns`` columns, read back with ``matching_rows``.
``decode_ahead`` decodes images on a few threads in the order they are needed, and ``Progress``
reports the count without flooding the callback.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from PIL import Image

from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.data.images import load_image
from clipstudio.engine.errors import ImageError
from clipstudio.engine.events import Callback, ProgressUpdated

FileKey = tuple[str, int, int]  # (absolute path, size in bytes, mtime in ns)
T = TypeVar("T")

_SQL_CHUNK = 500  # stays under SQLite's host-parameter limit on old builds (999)
_PROGRESS_INTERVAL_S = 0.1


def file_key(path: str | os.PathLike) -> FileKey | None:
    """(absolute path, size, mtime_ns), or None when the file can't be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


# --- the SQLite index ----------------------------------------------------------------------------


def ensure_schema(conn: sqlite3.Connection, version: int, tables: Sequence[str], what: str) -> None:
    """Create ``tables`` (``CREATE TABLE IF NOT EXISTS`` statements) in a new database and stamp ``version``.

    Raises ``sqlite3.DatabaseError`` for a database of another schema version: the caller
    discards it and rebuilds, as for a corrupt one.
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found not in (0, version):
        raise sqlite3.DatabaseError(f"unknown {what} schema version {found}")
    for statement in tables:
        conn.execute(statement)
    if found == 0:
        conn.execute(f"PRAGMA user_version = {version}")


def matching_rows(
    conn: sqlite3.Connection, table: str, columns: str, keys: Sequence[FileKey | None]
) -> Iterator[tuple[int, tuple]]:
    """(position in ``keys``, the row's ``columns``) for every key whose path, size and mtime match a row.

    ``table`` and ``columns`` are the caller's constants, never user text. A path listed twice
    in ``keys`` matches at both positions.
    """
    by_path: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            by_path.setdefault(key[0], []).append(i)
    wanted = list(by_path)
    for start in range(0, len(wanted), _SQL_CHUNK):
        chunk = wanted[start : start + _SQL_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT path, size, mtime_ns, {columns} FROM {table} WHERE path IN ({marks})", chunk
        )
        for path, size, mtime_ns, *values in rows:
            for i in by_path[path]:
                if keys[i][1] == size and keys[i][2] == mtime_ns:
                    yield i, tuple(values)


def discard_database(db: Path) -> None:
    """Delete an SQLite file and its journals; a missing one is fine, other errors reach the caller."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()


# --- decoding ------------------------------------------------------------------------------------


def decode_or_problem(path: Path, convert: Callable[[Image.Image], T]) -> T | Problem:
    """``convert`` of the decoded image, or the Problem that kept it from being read."""
    try:
        return convert(load_image(path))
    except ImageError as exc:  # its message reads "<path>: reason"; the Problem carries the path already
        text, prefix = str(exc), f"{path}: "
        return Problem(str(path), text[len(prefix) :] if text.startswith(prefix) else text)
    except OSError as exc:  # e.g. the file vanished after the dataset was read
        return Problem(str(path), f"cannot read the file ({exc.strerror or exc})")


def decode_ahead(
    decode: Callable[[int], T], order: Iterable[int], *, workers: int, lookahead: int, name: str
) -> Iterator[tuple[int, T]]:
    """(i, ``decode(i)``) for each ``i`` of ``order``, in order, with up to ``lookahead`` decodes queued on ``workers`` threads.

    Close the iterator (``contextlib.closing``) when stopping early: the queued decodes are
    cancelled rather than done for nobody, and the threads are joined.
    """
    todo = iter(order)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name) as pool:
        pending: deque[tuple[int, Future]] = deque(
            (i, pool.submit(decode, i)) for i in itertools.islice(todo, max(1, lookahead))
        )
        try:
            while pending:
                i, future = pending.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(decode, nxt)))
                yield i, future.result()
        finally:
            for _, future in pending:
                future.cancel()


class Progress:
    """Emits ProgressUpdated when the count changed: at most every 0.1 s, or now with ``force``."""

    def __init__(self, callback: Callback, stage: str, total: int):
        self.callback, self.stage, self.total = callback, stage, total
        self._last_time = float("-inf")
        self._last_done: int | None = None

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if done != self._last_done and (force or now - self._last_time >= _PROGRESS_INTERVAL_S):
            self._last_time, self._last_done = now, done
            self.callback(ProgressUpdated(stage=self.stage, done=done, total=self.total))
