"""ROC and precision-recall curves and their areas, with percentile-bootstrap 95% CIs.

Binary tasks score each image by the probability of the positive class; multi-class tasks score each
class one-vs-rest by its own probability, and the macro AUC is the mean over the classes that have
an AUC. An AUC needs images with and without the class: where there are none, it is None with the
reason in plain words, never NaN. Curves are thinned to a few hundred points for JSON and plots.

The AUC of every resample comes from counts, not from sorting each resample: the images are grouped
by distinct score once, a resample is its (score group, positive) counts, and the Mann-Whitney count
of correctly ordered (positive, negative) pairs, ties counting half, follows from cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipstudio.engine.evaluation.bootstrap import Estimate, bootstrap, percentile_ci, resample_counts

__all__ = [
    "ClassCurves",
    "RocAnalysis",
    "auc_resamples",
    "binary_curve_counts",
    "checked_predictions",
    "macro_auc_resamples",
    "positive_index",
    "pr_points",
    "roc_analysis",
    "roc_points",
    "thin_curve",
]

MAX_CURVE_POINTS = 200
# Above this many classes the per-class bootstrap (each class its own resamples of every image) and
# per-class curves cost far more than they tell (5,000 classes x 1,000 resamples x all images): the
# AUCs are still computed, without CIs and curves, and the result says why.
MAX_CLASSES_WITH_DETAIL = 100
_DECIMALS = 6  # curve coordinates in JSON: finer than any plot shows


@dataclass(frozen=True)
class ClassCurves:
    """One class against the rest: its AUC, average precision (area under PR) and thinned curves.

    ``roc``: ``fpr``, ``tpr``, ``threshold``; ``pr``: ``recall``, ``precision``, ``threshold``; both in
    order of falling threshold, the first point (nothing called positive) with threshold None. An
    image is called positive when its score is >= the threshold. Curves are None when undefined.
    """

    class_name: str
    n_positive: int
    n_negative: int
    auc: Estimate
    average_precision: Estimate
    roc: dict | None
    pr: dict | None

    def curves_dict(self) -> dict:
        return {
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "roc": self.roc,
            "pr": self.pr,
            "average_precision": self.average_precision.to_dict(),
        }


@dataclass(frozen=True)
class RocAnalysis:
    """AUCs and curves of a test set. Binary: ``per_class`` holds the positive class only."""

    n: int
    positive_class: str | None  # binary only: the class whose probability is the score
    macro_auc: Estimate
    per_class: dict[str, ClassCurves]
    left_out: list[str]  # classes without an AUC (no images of them, or nothing else)

    def auc_dict(self) -> dict:
        """The ``auc`` JSON block: ``macro`` and ``per_class``, each with ``value``, ``ci95`` and n."""
        per_class = {}
        for name, curves in self.per_class.items():
            per_class[name] = {**curves.auc.to_dict(), "n_positive": curves.n_positive}
        out: dict = {"n": self.n, "macro": self.macro_auc.to_dict(), "per_class": per_class}
        if self.positive_class is not None:
            out["positive_class"] = self.positive_class
        if self.left_out:
            out["left_out"] = list(self.left_out)
        return out

    def curves_dict(self) -> dict:
        """The ``roc`` JSON block: thinned ROC and PR points per class."""
        return {"n": self.n, "per_class": {name: c.curves_dict() for name, c in self.per_class.items()}}


def binary_curve_counts(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct score, highest first: the score, and the true and false positives at that threshold."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positive[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, dtype=np.int64)
    tps = np.cumsum(y)[last_of_run]
    return s[last_of_run], tps, last_of_run + 1 - tps


def roc_points(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC curve: fpr, tpr and thresholds (the first +inf: nothing positive). Needs both kinds of image."""
    thresholds, tps, fps = binary_curve_counts(positive, scores)
    n_pos, n_neg = tps[-1], fps[-1]
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, thresholds]


def pr_points(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full precision-recall curve: recall, precision and thresholds, the first point (0, 1, +inf)."""
    thresholds, tps, fps = binary_curve_counts(positive, scores)
    return np.r_[0.0, tps / tps[-1]], np.r_[1.0, tps / (tps + fps)], np.r_[np.inf, thresholds]


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points evenly spaced along the curve's length, ends kept.

    Even spacing along the path (not the index) keeps the corners a plot needs.
    """
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    path = np.r_[0.0, np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))]
    marks = np.searchsorted(path, np.linspace(0.0, path[-1], max_points))
    return np.unique(np.r_[0, np.minimum(marks, n - 1), n - 1])


def auc_resamples(positive: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ROC AUC and average precision of each resample in ``idx`` (b, n): (b, 2), NaN where undefined."""
    _, group = np.unique(-np.asarray(scores, dtype=np.float64), return_inverse=True)  # 0 = highest score
    n_groups = int(group.max()) + 1 if group.size else 1
    cell_of = 2 * group.reshape(-1) + np.asarray(positive, dtype=np.int64)
    counts = resample_counts(idx, cell_of, 2 * n_groups).reshape(-1, n_groups, 2).astype(np.float64)
    neg, pos = counts[:, :, 0], counts[:, :, 1]
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    # Positives in a group outrank the negatives of every lower group and tie with their own.
    neg_below = n_neg[:, None] - np.cumsum(neg, axis=1)
    pairs = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    tps, fps = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = np.divide(tps, tps + fps, out=np.zeros(tps.shape), where=tps + fps > 0)
    ap_sum = (pos * precision).sum(axis=1)
    defined = (n_pos > 0) & (n_neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where(defined, pairs / (n_pos * n_neg), np.nan)
        ap = np.where(defined, ap_sum / n_pos, np.nan)
    return np.column_stack([auc, ap])


def macro_auc_resamples(
    labels: np.ndarray, probs: np.ndarray, idx: np.ndarray, *, positive: int = 1
) -> np.ndarray:
    """Macro AUC of each resample (b,): binary, the AUC of column ``positive``; else the one-vs-rest mean.

    Classes with no image, or with all of them, in the full sample are left out; a resample's mean
    is over the classes defined in it (NaN when none is).
    """
    labels, probs = np.asarray(labels), np.asarray(probs)
    columns = [positive] if probs.shape[1] == 2 else list(range(probs.shape[1]))
    return _nanmean_rows(_auc_matrix(labels, probs, idx, columns)[0])


def roc_analysis(
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    *,
    positive_class: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    max_points: int = MAX_CURVE_POINTS,
) -> RocAnalysis:
    """AUC, average precision and thinned ROC/PR curves per class, and the macro AUC, with bootstrap CIs.

    ``labels`` (N,) class indices, ``probs`` (N, C) probabilities. Binary (C == 2): the score is the
    probability of ``positive_class`` (default: the second class). ``n_bootstrap=0`` skips the CIs.
    """
    labels, probs = checked_predictions(labels, probs, class_names)
    n = len(labels)
    positive = positive_index(class_names, positive_class)
    columns = [positive] if len(class_names) == 2 else list(range(len(class_names)))
    k = len(columns)
    auc_point, ap_point = _auc_matrix(labels, probs, np.arange(n)[None, :], columns)
    samples = None
    detailed = k <= MAX_CLASSES_WITH_DETAIL
    no_ci = "no bootstrap resamples were asked for" if detailed else (
        f"no CI or curves above {MAX_CLASSES_WITH_DETAIL} classes ({k} here): each class would need its own "
        "resamples of every image"
    )
    if n_bootstrap > 0 and n and detailed:
        samples = bootstrap(
            lambda idx: np.concatenate(_auc_matrix(labels, probs, idx, columns), axis=1),
            n, n_bootstrap=n_bootstrap, seed=seed,
        )
    per_class: dict[str, ClassCurves] = {}
    for j, c in enumerate(columns):
        name = class_names[c]
        is_pos = labels == c
        n_pos = int(is_pos.sum())
        if np.isnan(auc_point[0, j]):
            undefined = Estimate.undefined(n, _undefined_reason(name, n_pos, n))
            per_class[name] = ClassCurves(name, n_pos, n - n_pos, undefined, undefined, None, None)
            continue
        per_class[name] = ClassCurves(
            name, n_pos, n - n_pos,
            _estimate(auc_point[0, j], None if samples is None else samples[:, j], n, no_ci),
            _estimate(ap_point[0, j], None if samples is None else samples[:, k + j], n, no_ci),
            _curve_dict(*roc_points(is_pos, probs[:, c]), ("fpr", "tpr"), max_points) if detailed else None,
            _curve_dict(*pr_points(is_pos, probs[:, c]), ("recall", "precision"), max_points) if detailed else None,
        )
    defined = [j for j in range(k) if not np.isnan(auc_point[0, j])]
    if defined:
        macro_samples = None if samples is None else _nanmean_rows(samples[:, defined])
        macro = _estimate(float(np.mean(auc_point[0, defined])), macro_samples, n, no_ci)
    else:
        macro = Estimate.undefined(n, _no_auc_reason(labels, class_names))
    return RocAnalysis(
        n=n,
        positive_class=class_names[positive] if len(class_names) == 2 else None,
        macro_auc=macro,
        per_class=per_class,
        left_out=[class_names[c] for j, c in enumerate(columns) if j not in defined],
    )


def checked_predictions(
    labels: np.ndarray, probs: np.ndarray, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as (N,) int64 and ``probs`` as (N, C) float64, or ValueError when they don't fit together."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes; got {n_classes}")
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise ValueError(f"scores of shape {probs.shape} do not fit {len(labels)} labels and {n_classes} classes")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return labels, probs


def positive_index(class_names: list[str], positive_class: str | None) -> int:
    """Index of the positive class of a binary task: ``positive_class``, else the second class."""
    if positive_class is None:
        return 1
    if positive_class not in class_names:
        raise ValueError(f"positive class {positive_class!r} is not one of {class_names}")
    return class_names.index(positive_class)


def _auc_matrix(
    labels: np.ndarray, probs: np.ndarray, idx: np.ndarray, columns: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """AUC and average precision (b, len(columns)) per resample and class column; NaN where undefined.

    A class with no image, or with every image, in the full sample is NaN on every resample.
    """
    auc = np.full((idx.shape[0], len(columns)), np.nan)
    ap = auc.copy()
    for j, c in enumerate(columns):
        is_pos = labels == c
        if 0 < is_pos.sum() < len(labels):
            both = auc_resamples(is_pos, probs[:, c], idx)
            auc[:, j], ap[:, j] = both[:, 0], both[:, 1]
    return auc, ap


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means over the defined (non-NaN) entries; NaN for a row with none (no warning)."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=1)
    total = np.where(defined, values, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(values), np.nan), where=count > 0)


def _estimate(value: float, samples: np.ndarray | None, n: int, no_ci: str) -> Estimate:
    if samples is None:
        return Estimate(float(value), None, n, no_ci)
    ci, reason = percentile_ci(samples)
    return Estimate(float(value), ci, n, reason)


def _undefined_reason(name: str, n_positive: int, n: int) -> str:
    if n_positive == 0:
        return f"no images of '{name}', so there is nothing to rank against the rest"
    return f"all {n} images are '{name}', so there are no other images to rank them against"


def _no_auc_reason(labels: np.ndarray, class_names: list[str]) -> str:
    if not len(labels):
        return "no images"
    return f"an AUC needs images of at least two classes; all {len(labels)} images are '{class_names[labels[0]]}'"


def _curve_dict(
    x: np.ndarray, y: np.ndarray, thresholds: np.ndarray, names: tuple[str, str], max_points: int
) -> dict:
    keep = thin_curve(x, y, max_points)
    threshold = [None if np.isinf(t) else round(float(t), _DECIMALS) for t in thresholds[keep]]
    return {
        names[0]: np.round(x[keep], _DECIMALS).tolist(),
        names[1]: np.round(y[keep], _DECIMALS).tolist(),
        "threshold": threshold,
    }
