"""The embedding map: a 2-D layout of every image's embedding, similar images close together.

The method is UMAP's (McInnes et al. 2018), written here in numpy rather than taken from
``umap-learn``: that package compiles its loops with numba/llvmlite, which adds ~100 MB to the
frozen app, freezes poorly with PyInstaller and spends 10-30 s compiling on first use, before any
work is done. What is kept from UMAP:

* the fuzzy neighbour graph: each image's ``k`` nearest neighbours (``neighbours.neighbour_graph``),
  weighted by ``exp(-(d - rho) / sigma)`` with ``sigma`` found per image so the weights sum to
  ``log2 k``, and symmetrised as a fuzzy union (``a + b - ab``);
* the layout loss: attraction along edges and repulsion from randomly drawn images, with UMAP's
  ``a``, ``b`` curve for ``min_dist = 0.1``, updates clipped to +-4, learning rate falling to 0;
* each edge sampled in proportion to its weight (``epochs_per_sample``).

What differs: UMAP moves one point at a time (stochastic, and only reproducible on one thread);
here each epoch moves every point at once from the summed updates of its edges (vectorised numpy,
reproducible for a seed), with the negative samples drawn per image (a few per image per epoch,
scaled to UMAP's 5 per sampled edge) instead of per edge. Starting from the first two principal
components keeps the global arrangement stable from seed to seed. 100,000 images lay out in well
under a minute on a 2-core CPU (bench/bench_explore.py).
"""

from __future__ import annotations

import numpy as np

from clipstudio.engine.cache.file_index import Progress
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.explore.neighbours import NeighbourGraph, principal_components

# UMAP's curve 1 / (1 + a d^(2b)) fitted for spread 1, min_dist 0.1 (umap.umap_.find_ab_params).
_A = 1.5769434603113077
_B = 0.8950608781227859
_NEGATIVES = 5  # per sampled edge, as in UMAP
_DRAWN = 8  # negative images drawn per image per epoch, standing for _NEGATIVES per sampled edge
_CLIP = 4.0
_INIT_EXTENT = 10.0


def default_epochs(n: int) -> int:
    """UMAP's rule: 500 epochs for small data, 200 above 10,000 images."""
    return 500 if n <= 10_000 else 200


def fuzzy_edges(graph: NeighbourGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head, tail, weight) of the symmetrised fuzzy neighbour graph, each undirected edge once."""
    n, k = graph.indices.shape
    dist = np.maximum(1.0 - graph.similarities.astype(np.float64), 0.0)
    rho = dist[:, 0:1]
    excess = np.maximum(dist - rho, 0.0)
    target = np.log2(max(k, 2))
    lo, hi = np.zeros((n, 1)), np.full((n, 1), np.inf)
    sigma = np.ones((n, 1))
    for _ in range(64):  # bisection on every row at once
        total = np.exp(-excess / sigma).sum(axis=1, keepdims=True)
        too_big = total > target
        hi = np.where(too_big, sigma, hi)
        lo = np.where(too_big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    sigma = np.maximum(sigma, 1e-3 * max(float(dist.mean()), 1e-12))
    weight = np.exp(-excess / sigma).ravel()
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = graph.indices.ravel().astype(np.int64)
    first, second = np.minimum(rows, cols), np.maximum(rows, cols)
    keys, inverse = np.unique(first * n + second, return_inverse=True)
    forward = rows < cols
    a = np.zeros(len(keys))
    b = np.zeros(len(keys))
    a[inverse[forward]] = weight[forward]
    b[inverse[~forward]] = weight[~forward]
    return keys // n, keys % n, a + b - a * b


def embedding_map(
    x: np.ndarray,
    graph: NeighbourGraph,
    *,
    seed: int = 0,
    epochs: int | None = None,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> np.ndarray | None:
    """(N, 2) float32 map coordinates of the rows of ``x`` (None when stopped); the same for the same seed."""
    n = len(x)
    if n <= 2 or graph.k == 0:
        return _initial_layout(x) if n else np.zeros((0, 2), np.float32)
    epochs = epochs or default_epochs(n)
    head, tail, weight = fuzzy_edges(graph)
    keep = weight >= weight.max() / epochs  # UMAP drops edges too weak to be sampled once
    head, tail, weight = head[keep], tail[keep], weight[keep]
    per_epoch = weight / weight.max()  # expected samples of each edge per epoch
    y = _initial_layout(x)
    rng = np.random.default_rng(seed)
    progress = Progress(callback, "lay out map", epochs)
    for epoch in range(epochs):
        if should_stop():
            return None
        # Edge e is sampled at the epochs where floor(epoch * per_epoch) steps up, as UMAP schedules it.
        sampled = np.floor((epoch + 1) * per_epoch) > np.floor(epoch * per_epoch)
        _step(y, head[sampled], tail[sampled], rng, 1.0 - epoch / epochs)
        progress.update(epoch + 1)
    progress.update(epochs, force=True)
    return y


def _initial_layout(x: np.ndarray) -> np.ndarray:
    """The first two principal components, scaled to span ``_INIT_EXTENT``."""
    if len(x) < 2:
        return np.zeros((len(x), 2), np.float32)
    y = principal_components(x, 2).astype(np.float64)
    if y.shape[1] < 2:
        y = np.hstack([y, np.zeros((len(y), 2 - y.shape[1]))])
    span = np.abs(y).max()
    return (y * (_INIT_EXTENT / span if span > 0 else 1.0)).astype(np.float32)


def _step(y: np.ndarray, head: np.ndarray, tail: np.ndarray, rng: np.random.Generator, rate: float) -> None:
    """One epoch: every image moves at once by its summed, clipped attraction and repulsion."""
    n = len(y)
    diff = y[head] - y[tail]
    d2 = np.maximum(np.einsum("ij,ij->i", diff, diff), np.float32(1e-12))
    # d2^(b-1) once; d2^b is that times d2 (one power per pair instead of two).
    power = np.power(d2, np.float32(_B - 1.0))
    pull = np.float32(-2.0 * _A * _B) * power / (np.float32(_A) * power * d2 + 1.0)
    move = np.clip(pull[:, None] * diff, -_CLIP, _CLIP)
    # How many sampled edges each image is on: UMAP repels it from _NEGATIVES random images per edge.
    edges_at = np.bincount(head, minlength=n) + np.bincount(tail, minlength=n)
    others = rng.integers(0, n, size=n * _DRAWN)
    rep_diff = np.repeat(y, _DRAWN, axis=0) - y[others]
    rep_d2 = np.einsum("ij,ij->i", rep_diff, rep_diff)
    power = np.power(np.maximum(rep_d2, np.float32(1e-12)), np.float32(_B))
    push = np.float32(2.0 * _B) / ((0.001 + rep_d2) * (np.float32(_A) * power + 1.0))
    push[rep_d2 == 0] = 0.0  # an image drawn as its own negative, or one at the very same spot
    rep_move = np.clip(push[:, None] * rep_diff, -_CLIP, _CLIP).reshape(n, _DRAWN, 2).sum(axis=1)
    rep_move *= (edges_at * (_NEGATIVES / _DRAWN) / 2.0)[:, None].astype(np.float32)
    total = rep_move.astype(np.float64)
    for axis in range(2):
        total[:, axis] += np.bincount(head, weights=move[:, axis], minlength=n)
        total[:, axis] -= np.bincount(tail, weights=move[:, axis], minlength=n)
    y += (rate * np.clip(total, -_CLIP, _CLIP)).astype(np.float32)
