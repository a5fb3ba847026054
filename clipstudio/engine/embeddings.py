"""Encoding images and texts, and the on-disk image embedding cache that makes re-evaluation cheap.

The cache is one SQLite file per model fingerprint under ``cache_dir()/embeddings/<fingerprint>/``.
A vector is keyed by the image's absolute path and reused only while the file's size and
modification time are unchanged. The cache is an optimisation: when it is unusable the encoders
log a warning and carry on without it; a corrupt cache file is discarded and rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.errors import ImageError
from clipstudio.engine.events import Callback, ProgressUpdated, ShouldStop, never_stop, no_callback
from clipstudio.engine.storage.paths import cache_dir

if TYPE_CHECKING:
    import torch

    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_DB_NAME = "embeddings.sqlite"
_SQL_CHUNK = 500  # stays under SQLite's host-parameter limit on old builds (999)
_PROGRESS_INTERVAL_S = 0.1
_CHECK_IMAGES = 3  # readable images tried when checking the split preprocessing against the model's
_CHECK_TOLERANCE = 1e-5  # the split is bit-exact for known models; this only allows float reordering


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _file_key(path: Path) -> tuple[str, int, int] | None:
    """(absolute path, size, mtime_ns), or None when the file can't be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


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
        keys = {i: k for i, k in enumerate(map(_file_key, paths)) if k is not None}
        by_path: dict[str, list[int]] = {}
        for i, key in keys.items():
            by_path.setdefault(key[0], []).append(i)
        wanted = list(by_path)

        def read(conn: sqlite3.Connection) -> dict[int, np.ndarray]:
            hits: dict[int, np.ndarray] = {}
            for start in range(0, len(wanted), _SQL_CHUNK):
                chunk = wanted[start : start + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT path, size, mtime_ns, dim, vector FROM vectors WHERE path IN ({marks})", chunk
                )
                for path, size, mtime_ns, dim, blob in rows:
                    if len(blob) != 4 * dim:
                        continue  # a damaged row is a miss; the fresh vector will replace it
                    vector = np.frombuffer(blob, dtype=np.float32)
                    for i in by_path[path]:
                        if keys[i][1] == size and keys[i][2] == mtime_ns:
                            hits[i] = vector.copy()
            return hits

        if not wanted:
            return {}
        return self._with_db(fingerprint, read, default={})

    def put_many(self, fingerprint: str, paths: list[Path], vectors: np.ndarray) -> None:
        """Store one vector per path (replacing older vectors of the same file)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(paths) != len(vectors):
            raise ValueError(f"{len(paths)} paths but {len(vectors)} vectors")
        rows = []
        for path, vector in zip(paths, vectors, strict=True):
            key = _file_key(path)
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

    def _with_db(self, fingerprint, action, *, default):
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
                self._discard(db)
        return default

    @staticmethod
    def _connect(db: Path) -> sqlite3.Connection:
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unknown cache schema version {version}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors ("
                " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " dim INTEGER NOT NULL, vector BLOB NOT NULL)"
            )
            if version == 0:
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _discard(db: Path) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{db}{suffix}").unlink()


@dataclass
class EncodedImages:
    """Embeddings of the images that decoded, and what happened to the rest."""

    embeddings: np.ndarray  # (N_ok, D) float32, rows in the order of `indices`
    indices: list[int]  # positions in the input list that encoded OK
    problems: list[Problem] = field(default_factory=list)  # unreadable images, with reasons
    n_cached: int = 0
    n_encoded: int = 0
    cancelled: bool = False  # should_stop() was honoured; the fields cover the work done so far


class _Progress:
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


def encode_image_files(
    model: ImageTextModel,
    paths: list[Path],
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
    num_workers: int | None = None,
) -> EncodedImages:
    """Embed image files, reusing cached vectors; unreadable images are skipped and listed.

    Decoding, resizing and cropping run in ``num_workers`` threads (default: one per core, at
    most 8) ahead of the model, so reading the next batch overlaps encoding this one; each
    batch is then normalised at once. Cancellation returns the work done so far.
    """
    import torch

    paths = [Path(p) for p in paths]
    total = len(paths)
    progress = _Progress(callback, "encode images", total)
    fingerprint = model.fingerprint() if cache is not None else ""
    hits = cache.get_many(fingerprint, paths) if cache is not None else {}
    # A vector of the wrong width can only come from a damaged cache: re-encode rather than crash.
    vectors = {i: v for i, v in hits.items() if v.shape == (model.embed_dim,)}
    n_cached = len(vectors)
    problems: dict[int, Problem] = {}
    progress.update(n_cached, force=True)

    misses = [i for i in range(total) if i not in vectors]
    cancelled = False
    n_encoded = 0
    if misses:
        stages = _split_preprocessing(model, [paths[i] for i in misses[:_CHECK_IMAGES]])
        workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
            batch_idx: list[int] = []
            batch_pixels: list = []  # uint8 crops with `stages`, else preprocessed tensors

            def flush() -> None:
                nonlocal n_encoded
                if not batch_idx:
                    return
                with torch.inference_mode():
                    if stages is not None:
                        pixels = stages.normalise(np.stack(batch_pixels))
                    else:
                        pixels = torch.cat(batch_pixels)
                    if model.device.type == "cuda":  # pinned: the copy overlaps the next batch's decode
                        pixels = pixels.pin_memory()
                    pixels = pixels.to(model.device, non_blocking=True)
                    emb = model.encode_images(pixels).detach().float().cpu().numpy()
                emb = np.ascontiguousarray(emb, dtype=np.float32)
                for i, row in zip(batch_idx, emb, strict=True):
                    vectors[i] = row
                if cache is not None:
                    cache.put_many(fingerprint, [paths[i] for i in batch_idx], emb)
                n_encoded += len(batch_idx)
                batch_idx.clear()
                batch_pixels.clear()

            decode = functools.partial(_decode_one, model, stages)
            decoded = _decoded_in_order(pool, decode, paths, misses, lookahead=2 * batch_size)
            with contextlib.closing(decoded):
                for i, outcome in decoded:
                    if should_stop():
                        cancelled = True  # the partly filled batch is dropped: stopping beats finishing it
                        break
                    if isinstance(outcome, Problem):
                        problems[i] = outcome
                    else:
                        batch_idx.append(i)
                        batch_pixels.append(outcome)
                    if len(batch_idx) >= batch_size:
                        flush()
                    progress.update(n_cached + n_encoded + len(problems))
            if not cancelled:
                flush()
    progress.update(n_cached + n_encoded + len(problems), force=True)

    indices = sorted(vectors)
    if indices:
        embeddings = np.stack([vectors[i] for i in indices])
    else:
        embeddings = np.zeros((0, model.embed_dim), dtype=np.float32)
    return EncodedImages(
        embeddings=embeddings.astype(np.float32, copy=False),
        indices=indices,
        problems=[problems[i] for i in sorted(problems)],
        n_cached=n_cached,
        n_encoded=n_encoded,
        cancelled=cancelled,
    )


def _split_preprocessing(model: ImageTextModel, sample: list[Path]) -> ImagePreprocessing | None:
    """``model.preprocess`` as a uint8 crop per image plus one normalisation per batch, or None.

    Known for models with an ``ImagePreprocessing`` (dual encoders) or a plain transformers CLIP
    image processor. Used only if it reproduces ``model.preprocess`` on the first readable image
    of ``sample``: cached embeddings must be the ones the model's own preprocessing gives.
    """
    from clipstudio.engine.data.images import load_image
    from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing, ImagePreprocessing

    stages = getattr(model, "preprocessing", None)
    if not isinstance(stages, ImagePreprocessing):
        processor = getattr(model, "image_processor", None)
        stages = CLIPProcessorPreprocessing.from_processor(processor) if processor is not None else None
    if stages is None:
        return None
    for path in sample:
        try:
            image = load_image(path)
        except (ImageError, OSError):
            continue
        ours = stages.normalise(stages.crop(image)[None])
        theirs = model.preprocess([image])
        if ours.shape == theirs.shape and float((ours - theirs.float()).abs().max()) <= _CHECK_TOLERANCE:
            return stages
        log.debug(
            "%s preprocesses differently from %r; encoding with model.preprocess.",
            type(model).__name__,
            stages,
        )
        return None
    return None


def _decoded_in_order(
    pool: ThreadPoolExecutor,
    decode: Callable[[Path], np.ndarray | torch.Tensor | Problem],
    paths: list[Path],
    order: list[int],
    *,
    lookahead: int,
) -> Iterator[tuple[int, np.ndarray | torch.Tensor | Problem]]:
    """Yield (index, ``decode(path)``) in ``order``, keeping at most ``lookahead`` decodes queued."""
    pending: deque[tuple[int, Future]] = deque()
    todo = iter(order)
    try:
        for i in todo:
            pending.append((i, pool.submit(decode, paths[i])))
            if len(pending) >= lookahead:
                break
        while pending:
            i, future = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(decode, paths[nxt])))
            yield i, future.result()
    finally:
        # On cancellation or an error, don't decode images nobody will encode.
        for _, future in pending:
            future.cancel()


def _decode_one(
    model: ImageTextModel, stages: ImagePreprocessing | None, path: Path
) -> np.ndarray | torch.Tensor | Problem:
    """The image's uint8 crop (with ``stages``) or preprocessed pixels, or the Problem reading it."""
    from clipstudio.engine.data.images import load_image

    try:
        image = load_image(path)
    except ImageError as exc:
        return Problem(str(path), _reason(exc, path))
    except OSError as exc:  # e.g. the file vanished after the dataset was read
        return Problem(str(path), exc.strerror or str(exc))
    return stages.crop(image) if stages is not None else model.preprocess([image])


def _reason(exc: Exception, path: Path) -> str:
    """ImageError messages read "<path>: reason"; the Problem already carries the path."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def encode_texts(
    model: ImageTextModel,
    texts: list[str],
    *,
    batch_size: int = 256,
    callback: Callback = no_callback,
) -> np.ndarray:
    """(N, D) float32 text embeddings, encoded in batches."""
    import torch

    if not texts:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    progress = _Progress(callback, "encode texts", len(texts))
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out.append(model.encode_texts(batch).detach().float().cpu().numpy())
            progress.update(start + len(batch))
    progress.update(len(texts), force=True)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


class TextEmbeddingCache:
    """L2-normalised text embeddings per (model fingerprint, text), in memory; thread-safe.

    Re-scoring after a prompt edit then encodes only the edited texts: editing one template of 20
    classes x 5 prompts encodes 20 texts, not 100. The least recently used texts are dropped
    beyond ``max_texts``. Pass one to ``class_text_embeddings`` / ``compare_prompt_sets``.
    """

    def __init__(self, max_texts: int = 20_000) -> None:
        import threading
        from collections import OrderedDict

        self.max_texts = max_texts
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def encode(self, model: ImageTextModel, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of ``texts``, encoding only those not cached."""
        fingerprint = model.fingerprint()
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get((fingerprint, text))
                if vector is not None:
                    self._vectors.move_to_end((fingerprint, text))
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = l2_normalise(encode_texts(model, missing, batch_size=batch_size))
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    found[text] = vector
                    self._vectors[(fingerprint, text)] = vector
                while len(self._vectors) > self.max_texts:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, model.embed_dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
