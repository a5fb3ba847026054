"""Each image's most similar other images (cosine similarity of embeddings): the graph the map, the
near-duplicate search and the outlier scores are built on.

Exact below ``EXACT_BELOW`` images: blocked float32 matrix products over all pairs. Above that,
comparing every pair costs too much on a laptop CPU (100,000 images: 10^10 pairs, several minutes
for the products and the top-k selection alone), so candidates come from buckets instead, the
inverted-file scheme of vector search libraries: k-means on a 64-dimension PCA of the embeddings,
and each bucket's images compared with the images of its nearest buckets. The best candidates are
then re-ranked by their exact, full-dimension cosine similarity, so every similarity reported is
exact and only a far neighbour can be missed; near-duplicates, which are the closest pairs of all,
land in the same or neighbouring buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipstudio.engine.cache.file_index import Progress
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

EXACT_BELOW = 8_000
DEFAULT_NEIGHBOURS = 15
_PCA_DIMS = 64
_BUCKET_SIZE = 200  # mean images per k-means bucket
_KMEANS_ROUNDS = 8
_KMEANS_FIT_PER_BUCKET = 64  # rows per bucket the centres are fitted on (then every row is assigned)
_PCA_FIT_ROWS = 20_000
_MIN_PROBES = 8  # buckets searched per bucket (its own and the nearest others)
_RERANK = 3  # candidates re-ranked in full dimension per neighbour kept
_BLOCK = 1024  # query rows per matrix product


@dataclass(frozen=True)
class NeighbourGraph:
    """Each row's ``k`` most similar other rows, most similar first."""

    indices: np.ndarray  # (N, k) int32 row positions
    similarities: np.ndarray  # (N, k) float32 exact cosine similarity, descending per row

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def principal_components(x: np.ndarray, dims: int, *, seed: int = 0) -> np.ndarray:
    """(N, min(dims, D)) float32 projection of the centred rows onto their leading principal axes.

    The axes are fitted on at most ``_PCA_FIT_ROWS`` rows drawn with ``seed``: plenty to estimate a
    512 x 512 covariance, and 5x less work at 100,000 images.
    """
    x = np.asarray(x, dtype=np.float32)
    fit = x if len(x) <= _PCA_FIT_ROWS else x[np.sort(np.random.default_rng(seed).choice(len(x), _PCA_FIT_ROWS,
                                                                                          replace=False))]
    mean = fit.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred_fit = fit - mean
    cov = (centred_fit.T @ centred_fit).astype(np.float64)
    centred = x - mean
    values, vectors = np.linalg.eigh(cov)
    axes = vectors[:, np.argsort(values)[::-1][: min(dims, x.shape[1])]]
    # Eigenvector signs are arbitrary: fix them so the same data always gives the same projection.
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    return centred @ (axes * signs).astype(np.float32)


def neighbour_graph(
    x: np.ndarray,
    *,
    k: int = DEFAULT_NEIGHBOURS,
    seed: int = 0,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> NeighbourGraph | None:
    """The ``k`` nearest rows of every row of L2-normalised ``x`` (None when stopped).

    With fewer than ``k + 1`` rows, ``k`` shrinks to ``N - 1``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    k = max(0, min(k, n - 1))
    if k == 0:
        return NeighbourGraph(np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32))
    if n < EXACT_BELOW:
        return _exact(x, k, Progress(callback, "find similar images", n), should_stop)
    return _bucketed(x, k, seed, Progress(callback, "find similar images", n), should_stop)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's ``k`` largest scores, largest first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else np.tile(
        np.arange(scores.shape[1]), (len(scores), 1)
    )
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _exact(x: np.ndarray, k: int, progress: Progress, should_stop: ShouldStop) -> NeighbourGraph | None:
    n = len(x)
    indices = np.empty((n, k), np.int32)
    sims = np.empty((n, k), np.float32)
    for start in range(0, n, _BLOCK):
        if should_stop():
            return None
        stop = min(n, start + _BLOCK)
        block = x[start:stop] @ x.T
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        top = _top_k(block, k)
        indices[start:stop] = top
        sims[start:stop] = np.take_along_axis(block, top, axis=1)
        progress.update(stop)
    progress.update(n, force=True)
    return NeighbourGraph(indices, sims)


def _kmeans(z: np.ndarray, n_buckets: int, rng: np.random.Generator, should_stop: ShouldStop) -> np.ndarray | None:
    """Bucket of each row, the centres from a few rounds of Lloyd's k-means on a sample of the rows.

    As vector search libraries do (faiss caps training at 256 rows per centre): the buckets need
    only be roughly balanced, and the sample makes the rounds several times cheaper.
    """
    full = z
    if len(z) > _KMEANS_FIT_PER_BUCKET * n_buckets:
        z = z[np.sort(rng.choice(len(z), _KMEANS_FIT_PER_BUCKET * n_buckets, replace=False))]
    centres = z[rng.choice(len(z), n_buckets, replace=False)].copy()
    assign = np.zeros(len(z), np.int64)
    for _ in range(_KMEANS_ROUNDS):
        if should_stop():
            return None
        assign = _nearest_centre(z, centres)
        counts = np.bincount(assign, minlength=n_buckets)
        sums = _bucket_sums(assign, z, n_buckets)
        filled = counts > 0
        centres[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        # An empty bucket takes the row farthest from its centre, so no bucket stays empty.
        for empty in np.flatnonzero(~filled):
            far = int(np.argmax(((z - centres[assign]) ** 2).sum(axis=1)))
            centres[empty] = z[far]
            assign[far] = empty
    return _nearest_centre(full, centres)


def _bucket_sums(assign: np.ndarray, z: np.ndarray, n_buckets: int) -> np.ndarray:
    """(n_buckets, d) sums of each bucket's rows, one column at a time (bincount is far faster than add.at)."""
    return np.stack([np.bincount(assign, weights=z[:, d], minlength=n_buckets) for d in range(z.shape[1])], axis=1)


def _nearest_centre(z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    half_norms = 0.5 * (centres**2).sum(axis=1)
    out = np.empty(len(z), np.int64)
    for start in range(0, len(z), 8 * _BLOCK):
        out[start : start + 8 * _BLOCK] = np.argmax(z[start : start + 8 * _BLOCK] @ centres.T - half_norms, axis=1)
    return out


def _bucketed(
    x: np.ndarray, k: int, seed: int, progress: Progress, should_stop: ShouldStop
) -> NeighbourGraph | None:
    n = len(x)
    rng = np.random.default_rng(seed)
    z = principal_components(x, _PCA_DIMS, seed=seed)
    n_buckets = max(16, min(2048, n // _BUCKET_SIZE))
    assign = _kmeans(z, n_buckets, rng, should_stop)
    if assign is None:
        return None
    sizes = np.bincount(assign, minlength=n_buckets)
    members = np.split(np.argsort(assign, kind="stable"), np.cumsum(sizes)[:-1])
    centres = np.stack([z[m].mean(axis=0) if len(m) else np.zeros(z.shape[1], np.float32) for m in members])
    centre_sq = (centres**2).sum(axis=1)
    centre_dist = centre_sq[:, None] + centre_sq[None, :] - 2.0 * (centres @ centres.T)
    sq_norms = (z**2).sum(axis=1)
    n_candidates = min(n - 1, _RERANK * k)
    indices = np.empty((n, k), np.int32)
    sims = np.empty((n, k), np.float32)
    done = 0
    for b in range(n_buckets):
        if should_stop():
            return None
        queries = members[b]
        if not len(queries):
            continue
        near = np.argsort(centre_dist[b], kind="stable")
        # The nearest buckets, more of them when they are small: enough candidates for every query.
        reach = max(_MIN_PROBES, int(np.searchsorted(np.cumsum(sizes[near]), 4 * n_candidates + 1)) + 1)
        pool = np.concatenate([members[c] for c in near[:reach]])
        for start in range(0, len(queries), _BLOCK):
            q = queries[start : start + _BLOCK]
            # Negative squared distance in the PCA space, up to a per-query constant.
            scores = z[q] @ z[pool].T - 0.5 * sq_norms[pool]
            scores[pool[None, :] == q[:, None]] = -np.inf
            cand = pool[_top_k(scores, min(n_candidates, len(pool) - 1))]
            exact = np.einsum("bd,bkd->bk", x[q], x[cand])
            top = _top_k(exact, k)
            indices[q] = cand[np.arange(len(q))[:, None], top]
            sims[q] = np.take_along_axis(exact, top, axis=1)
        done += len(queries)
        progress.update(done)
    progress.update(n, force=True)
    return NeighbourGraph(indices, sims)
