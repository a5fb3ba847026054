"""Split conformal prediction sets: for each image, the classes that cannot be ruled out.

A nonconformity score says how badly a class fits an image. On validation images (the calibration
set, never test) the score of each image's true class is computed, and the threshold q is their
ceil((n + 1)(1 - alpha))-th smallest value. A test image's set holds every class scoring <= q. If
validation and test images are exchangeable, the set holds the true class with probability at least
1 - alpha, whatever the model; a poor model just needs larger sets.

- LAC ("least ambiguous classifier"): score = 1 - p(class). Smallest sets on average.
- APS ("adaptive prediction sets"): score = total probability of the classes ranked above the class
  plus its own. Sets grow for images the model is unsure about. Not randomised, so the same image
  always gets the same set; the most probable class is always in it, so it is never empty
  (coverage may come out a little above the target).
A LAC set can be empty (no class is plausible enough); any set can hold every class (the model
cannot decide).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SCORES",
    "ConformalCalibrator",
    "ConformalResult",
    "conformal_report",
    "fit_conformal",
    "nonconformity",
    "prediction_sets",
]

SCORES = ("lac", "aps")
DEFAULT_COVERAGE = 0.9


@dataclass(frozen=True)
class ConformalCalibrator:
    """The fitted threshold: sets hold classes with score <= ``quantile`` (inf: every class)."""

    score: str
    coverage: float
    quantile: float
    n: int  # validation images it was calibrated on

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "coverage": self.coverage,
            "quantile": None if math.isinf(self.quantile) else self.quantile,
            "n": self.n,
        }


@dataclass(frozen=True)
class ConformalResult:
    """Prediction sets of test images and how they did. Figures are None, with ``reason``, when not fitted."""

    n: int
    coverage_target: float
    score: str
    coverage: float | None = None  # share of test images whose set holds the true class
    mean_set_size: float | None = None
    calibrator: ConformalCalibrator | None = None
    set_size_counts: dict[int, int] = field(default_factory=dict)  # set size -> images
    sets: np.ndarray | None = None  # (N, C) bool, not in to_dict unless asked
    reason: str | None = None

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        """JSON block; with ``class_names``, also ``sets``: each test image's classes by name."""
        out: dict = {
            "n": self.n,
            "coverage_target": self.coverage_target,
            "coverage": self.coverage,
            "mean_set_size": self.mean_set_size,
            "score": self.score,
            "calibration": None if self.calibrator is None else self.calibrator.to_dict(),
            "set_size_counts": {str(k): v for k, v in sorted(self.set_size_counts.items())},
        }
        if self.reason:
            out["reason"] = self.reason
        if class_names is not None and self.sets is not None:
            out["sets"] = [[class_names[c] for c in np.flatnonzero(row)] for row in self.sets]
        return out


def nonconformity(probs: np.ndarray, score: str = "lac") -> np.ndarray:
    """(N, C) score of every class for every image; lower fits better."""
    probs = np.asarray(probs, dtype=np.float64)
    if score == "lac":
        return 1.0 - probs
    if score == "aps":
        order = np.argsort(-probs, axis=1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)
        out = np.empty_like(probs)
        np.put_along_axis(out, order, cumulative, axis=1)
        return out
    raise ValueError(f"conformal score {score!r} is not one of {', '.join(SCORES)}")


def fit_conformal(
    labels: np.ndarray, probs: np.ndarray, *, coverage: float = DEFAULT_COVERAGE, score: str = "lac"
) -> ConformalCalibrator:
    """Calibrate on validation: the ceil((n + 1) * coverage)-th smallest true-class score.

    With too few images for the coverage (ceil((n + 1) * coverage) > n), the threshold is inf
    and every set holds every class: the only sets that keep the promise.
    """
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie in (0, 1); got {coverage}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    scores = nonconformity(probs, score)[np.arange(len(labels)), labels]
    n = len(scores)
    # The small epsilon keeps (n + 1) * 0.9 = 9.000000000000002 from rounding up to 10.
    rank = math.ceil((n + 1) * coverage - 1e-9)
    quantile = float(np.sort(scores)[rank - 1]) if 0 < rank <= n else math.inf
    return ConformalCalibrator(score, float(coverage), quantile, n)


def prediction_sets(calibrator: ConformalCalibrator, probs: np.ndarray) -> np.ndarray:
    """(N, C) bool: the classes in each image's prediction set, those scoring <= the threshold.

    APS sets also always hold the most probable class: an APS set is empty only when the top class
    alone has more mass than the threshold, i.e. the model is surer than needed, not unsure.
    """
    probs = np.asarray(probs, dtype=np.float64)
    sets = nonconformity(probs, calibrator.score) <= calibrator.quantile
    if calibrator.score == "aps" and len(probs):
        sets[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return sets


def conformal_report(
    test_labels: np.ndarray,
    test_probs: np.ndarray,
    *,
    val_labels: np.ndarray | None = None,
    val_probs: np.ndarray | None = None,
    coverage: float = DEFAULT_COVERAGE,
    score: str = "lac",
) -> ConformalResult:
    """Calibrate on validation, form the test images' sets, and measure coverage and mean set size."""
    test_labels = np.asarray(test_labels, dtype=np.int64).reshape(-1)
    n = len(test_labels)
    if val_labels is None or val_probs is None or not len(val_labels):
        return ConformalResult(
            n, coverage, score,
            reason="no validation images: prediction sets are calibrated on validation only, never on test",
        )
    calibrator = fit_conformal(val_labels, val_probs, coverage=coverage, score=score)
    reason = None
    if math.isinf(calibrator.quantile):
        needed = math.ceil(coverage / (1 - coverage) - 1e-9)
        reason = (
            f"only {calibrator.n} validation images: {coverage:.0%} coverage needs at least {needed}, "
            "so every set holds every class"
        )
    if not n:
        return ConformalResult(n, coverage, score, calibrator=calibrator, reason="no test images")
    sets = prediction_sets(calibrator, test_probs)
    sizes = sets.sum(axis=1)
    return ConformalResult(
        n=n,
        coverage_target=float(coverage),
        score=score,
        coverage=float(np.mean(sets[np.arange(n), test_labels])),
        mean_set_size=float(np.mean(sizes)),
        calibrator=calibrator,
        set_size_counts={int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True), strict=True)},
        sets=sets,
        reason=reason,
    )
