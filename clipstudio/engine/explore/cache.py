"""The explorer's slow results kept on disk: the neighbour graph and the map, per model and embeddings.

One ``.npz`` per result under ``cache_dir()/explore/<model image fingerprint>/``, named by a hash
of the embeddings themselves and the settings, so a changed image, another model or another seed
is a fresh computation and never a stale answer. Written atomically; a damaged file is a miss
(computed again and replaced). Like the embedding cache, it is an optimisation: when the folder
can't be written, the result is still returned.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from pathlib import Path

import numpy as np

from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.explore.embedding_map import embedding_map
from clipstudio.engine.explore.neighbours import DEFAULT_NEIGHBOURS, NeighbourGraph, neighbour_graph
from clipstudio.engine.storage.atomic import atomic_write_bytes
from clipstudio.engine.storage.paths import cache_dir

log = logging.getLogger(__name__)

_FORMAT = 1  # part of every key: a change of method or file layout starts afresh


def embeddings_key(x: np.ndarray) -> str:
    """A hex digest of the embeddings' values and shape."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.sha256(str(x.shape).encode())
    digest.update(memoryview(x).cast("B"))
    return digest.hexdigest()


class ExploreCache:
    """Neighbour graphs and map layouts on disk; ``root`` None: ``cache_dir()/explore``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "explore"

    def neighbour_graph(
        self,
        x: np.ndarray,
        fingerprint: str,
        *,
        k: int = DEFAULT_NEIGHBOURS,
        seed: int = 0,
        callback: Callback = no_callback,
        should_stop: ShouldStop = never_stop,
    ) -> NeighbourGraph | None:
        """``neighbours.neighbour_graph`` of ``x``, from the cache when computed before (None when stopped)."""
        path = self._path(fingerprint, "graph", embeddings_key(x), f"k{k}-s{seed}")
        found = self._read(path, ("indices", "similarities"))
        if found is not None and found["indices"].shape == (len(x), min(k, max(len(x) - 1, 0))):
            return NeighbourGraph(found["indices"], found["similarities"])
        graph = neighbour_graph(x, k=k, seed=seed, callback=callback, should_stop=should_stop)
        if graph is not None:
            self._write(path, {"indices": graph.indices, "similarities": graph.similarities})
        return graph

    def embedding_map(
        self,
        x: np.ndarray,
        graph: NeighbourGraph,
        fingerprint: str,
        *,
        seed: int = 0,
        callback: Callback = no_callback,
        should_stop: ShouldStop = never_stop,
    ) -> np.ndarray | None:
        """``embedding_map.embedding_map`` of ``x``, from the cache when computed before (None when stopped)."""
        path = self._path(fingerprint, "map", embeddings_key(x), f"k{graph.k}-s{seed}")
        found = self._read(path, ("xy",))
        if found is not None and found["xy"].shape == (len(x), 2):
            return found["xy"]
        xy = embedding_map(x, graph, seed=seed, callback=callback, should_stop=should_stop)
        if xy is not None:
            self._write(path, {"xy": xy})
        return xy

    def _path(self, fingerprint: str, kind: str, key: str, settings: str) -> Path:
        # A fingerprint is a hex digest; anything else is made folder-safe rather than trusted.
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", fingerprint).strip(".") or "_"
        name = hashlib.sha256(f"{_FORMAT}|{kind}|{key}|{settings}".encode()).hexdigest()[:32]
        return self.root / safe / f"{kind}-{name}.npz"

    @staticmethod
    def _read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:  # allow_pickle defaults to False: arrays only, never objects
                return {name: data[name] for name in names}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("Explorer cache file %s can't be read (%s); computing it again.", path, exc)
            return None

    @staticmethod
    def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as exc:  # read-only or full disk: the result is still good, just not kept
            log.warning("Explorer cache %s can't be written (%s); continuing without it.", path, exc)
