"""Embedding vectors kept for reuse: image vectors on disk, text vectors in memory.

The image cache is one SQLite file per model fingerprint under ``cache_dir()/embeddings/<fingerprint>/``.
A vector is keyed by the image's absolute path and reused only while the file's size and
modification time are unchanged. The cache is an optimisation: when it is unusable it logs a
warning and answers as an empty cache; a corrupt cache file is discarded and rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from clipstudio.engine.cache.file_index import discard_database, ensure_schema, file_key, matching_rows
from clipstudio.engine.storage.paths import cache_dir

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_DB_NAME = "embeddings.sqlite"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS vectors ("
    " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " dim INTEGER NOT NULL, vector BLOB NOT NULL)"
)
R = TypeVar("R")


class EmbeddingCache:
    """Image embeddings on disk, one SQLite database per model fingerprint."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"
        self._unusable: set[str] = set()  # fingerprints whose database can't be opened this session

    def db_path(self, fingerprint: str) -> Path:
        # A fingerprint is a hex digest; anything else is made folder-safe rather than trusted.
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", fingerprint).strip(".") or "_"
        return self.root / safe / _DB_NAME

    def get_many(self, fingerprint: str, paths: list[Path]) -> dict[int, np.ndarray]:
        """Index in ``paths`` -> cached vector, for every file whose size and mtime still match."""
        keys = [file_key(p) for p in paths]

        def read(conn: sqlite3.Connection) -> dict[int, np.ndarray]:
            hits: dict[int, np.ndarray] = {}
            for i, (dim, blob) in matching_rows(conn, "vectors", "dim, vector", keys):
                if len(blob) == 4 * dim:  # a damaged row is a miss; the fresh vector will replace it
                    hits[i] = np.frombuffer(blob, dtype=np.float32).copy()
            return hits

        if not any(keys):
            return {}
        return self._with_db(fingerprint, read, default={})

    def put_many(self, fingerprint: str, paths: list[Path], vectors: np.ndarray) -> None:
        """Store one vector per path (replacing older vectors of the same file)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(paths) != len(vectors):
            raise ValueError(f"{len(paths)} paths but {len(vectors)} vectors")
        rows = []
        for path, vector in zip(paths, vectors, strict=True):
            key = file_key(path)
            if key is not None:
                rows.append((*key, vector.shape[0], vector.tobytes()))

        def write(conn: sqlite3.Connection) -> None:
            with conn:  # one transaction: all rows or none
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (path, size, mtime_ns, dim, vector) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

        if rows:
            self._with_db(fingerprint, write, default=None)

    def _with_db(self, fingerprint: str, action: Callable[[sqlite3.Connection], R], *, default: R) -> R:
        """Run ``action(connection)``; rebuild a corrupt database once, give up quietly on I/O trouble."""
        if fingerprint in self._unusable:
            return default
        db = self.db_path(fingerprint)
        for attempt in range(2):
            try:
                with contextlib.closing(self._connect(db)) as conn:
                    return action(conn)
            except (sqlite3.OperationalError, OSError) as exc:
                # Locked for too long, read-only folder, disk full: skip the cache, keep working.
                log.warning("Embedding cache %s can't be used (%s); continuing without it.", db, exc)
                self._unusable.add(fingerprint)
                return default
            except sqlite3.DatabaseError as exc:
                if attempt:
                    log.warning("Embedding cache %s still unusable (%s); continuing without it.", db, exc)
                    self._unusable.add(fingerprint)
                    return default
                log.warning("Embedding cache %s is corrupt (%s); discarding it and rebuilding.", db, exc)
                discard_database(db)
        return default

    @staticmethod
    def _connect(db: Path) -> sqlite3.Connection:
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30)
        try:
            ensure_schema(conn, _SCHEMA_VERSION, [_TABLE], "embedding cache")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn


class TextEmbeddingCache:
    """Text embeddings per (model fingerprint, text), in memory; thread-safe.

    Re-scoring after a prompt edit then encodes only the edited texts: editing one template of 20
    classes x 5 prompts encodes 20 texts, not 100. The least recently used texts are dropped
    beyond ``max_texts``. Filled and read by ``embeddings.normalised_text_embeddings``.
    """

    def __init__(self, max_texts: int = 20_000) -> None:
        self.max_texts = max_texts
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get_many(self, fingerprint: str, texts: list[str]) -> dict[str, np.ndarray]:
        """Text -> vector for the ``texts`` held for this model (they become the most recently used)."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get((fingerprint, text))
                if vector is not None:
                    self._vectors.move_to_end((fingerprint, text))
                    found[text] = vector
        return found

    def put_many(self, fingerprint: str, texts: list[str], vectors: np.ndarray) -> None:
        """Hold one vector per text, dropping the least recently used beyond ``max_texts``."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._vectors[(fingerprint, text)] = vector
                self._vectors.move_to_end((fingerprint, text))
            while len(self._vectors) > self.max_texts:
                self._vectors.popitem(last=False)
