"""Resampling the test images with replacement, and the intervals read off the resamples.

One resampling scheme for every metric with a bootstrap CI: ``resample_chunks`` draws index
resamples in memory-bounded chunks from a seeded generator, a statistic maps each chunk to one value
per resample, and ``percentile_ci`` reads the 2.5th and 97.5th percentiles. Two models compared on
the same images are resampled *paired*: one statistic sees both models' predictions through the same
indices, so the difference is computed image for image. ``Estimate`` carries a value, its interval,
n and, when either is missing, the plain-words reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHUNK_CELLS",
    "Estimate",
    "accuracy_resamples",
    "bootstrap",
    "percentile_ci",
    "resample_chunks",
    "resample_counts",
]

CHUNK_CELLS = 2_000_000  # array cells (resample indices) held in memory at once
MIN_DEFINED_SHARE = 0.9  # below this share of resamples where the metric is defined, no interval


@dataclass(frozen=True)
class Estimate:
    """A metric with its 95% CI ``[lo, hi]`` and the n it rests on; ``reason`` says why a part is None."""

    value: float | None
    ci95: list[float] | None
    n: int
    reason: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"value": self.value, "ci95": None if self.ci95 is None else list(self.ci95), "n": self.n}
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def undefined(cls, n: int, reason: str) -> Estimate:
        return cls(None, None, n, reason)


def resample_chunks(n: int, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (b, n) index arrays, ``n_bootstrap`` resamples of ``range(n)`` in all, at most ~CHUNK_CELLS cells each.

    The same seed gives the same resamples, so two statistics computed from one stream are paired.
    """
    if n <= 0:
        return
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK_CELLS // n)
    for start in range(0, n_bootstrap, per_chunk):
        yield rng.integers(0, n, size=(min(per_chunk, n_bootstrap - start), n))


def resample_counts(idx: np.ndarray, cell_of: np.ndarray, n_cells: int) -> np.ndarray:
    """(b, n_cells) int64: per resample, how many of its images fall in each cell (``cell_of`` per image)."""
    b = idx.shape[0]
    # One bincount over (resample, cell) pairs counts every resample of the chunk at once.
    cells = (np.arange(b)[:, None] * n_cells + np.take(cell_of, idx)).ravel()
    return np.bincount(cells, minlength=b * n_cells).reshape(b, n_cells)


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray], n: int, *, n_bootstrap: int, seed: int
) -> np.ndarray:
    """``statistic`` of ``n_bootstrap`` resamples of ``n`` images: (n_bootstrap,) or (n_bootstrap, k).

    ``statistic`` maps a (b, n) index chunk to b values (NaN where the metric is undefined on a
    resample). For a paired comparison it computes both models from the same indices.
    """
    parts = [np.asarray(statistic(idx), dtype=np.float64) for idx in resample_chunks(n, n_bootstrap, seed)]
    return np.concatenate(parts) if parts else np.zeros(0)


def percentile_ci(values: np.ndarray) -> tuple[list[float] | None, str | None]:
    """The percentile-bootstrap 95% interval of resampled values, or None and the reason.

    Resamples where the metric is undefined (NaN) are left out; when they are more than 10% of all,
    or when every resample gives the same value (a degenerate interval such as "33.3% - 33.3%"),
    there is no interval.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not values.size:
        return None, "no resamples were drawn"
    defined = values[~np.isnan(values)]
    if defined.size < MIN_DEFINED_SHARE * values.size:
        share = 1 - defined.size / values.size
        return None, f"the metric is undefined on {share:.0%} of the resamples (too few images of a class)"
    lo, hi = (float(v) for v in np.percentile(defined, [2.5, 97.5]))
    if lo == hi:
        return None, "every resample gives the same value, so the bootstrap cannot give an interval"
    return [lo, hi], None


def accuracy_resamples(
    labels: np.ndarray, pred: np.ndarray, n_classes: int, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and balanced accuracy (mean recall over the classes present) of each resample in ``idx``."""
    # Each image as one (class, right or wrong) cell: a resample needs only the counts per cell.
    cell_of = (2 * labels + (pred == labels)).astype(np.int64)
    counts = resample_counts(idx, cell_of, 2 * n_classes).reshape(-1, n_classes, 2)
    hits = counts[:, :, 1]
    support = counts.sum(axis=2)
    recall = np.divide(hits, support, out=np.zeros(hits.shape), where=support > 0)
    return hits.sum(axis=1) / idx.shape[1], recall.sum(axis=1) / (support > 0).sum(axis=1)
