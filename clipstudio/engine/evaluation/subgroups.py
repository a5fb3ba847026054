"""Metrics per subgroup (a metadata column, or the patient group of a split), flagged when clearly worse.

Each subgroup gets n, accuracy, balanced accuracy and macro AUC with percentile-bootstrap 95% CIs
over its own images. A subgroup is flagged on a metric when even the upper end of its CI lies below
the figure for all images together: the shortfall is unlikely to be chance. Small subgroups have
wide CIs and are rarely flagged; that is the honest answer, not a failure to look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipstudio.engine.evaluation.bootstrap import Estimate, accuracy_resamples, bootstrap, percentile_ci
from clipstudio.engine.evaluation.roc import (
    MAX_CLASSES_WITH_DETAIL,
    checked_predictions,
    macro_auc_resamples,
    positive_index,
)

__all__ = ["METRICS", "SubgroupMetrics", "SubgroupReport", "subgroup_metrics"]

METRICS = ("accuracy", "balanced_accuracy", "macro_auc")


@dataclass(frozen=True)
class SubgroupMetrics:
    """One subgroup's figures; ``flagged`` names the metrics whose CI lies wholly below the overall one."""

    group: str
    n: int
    accuracy: Estimate
    balanced_accuracy: Estimate
    macro_auc: Estimate
    flagged: list[str]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": self.accuracy.to_dict(),
            "balanced_accuracy": self.balanced_accuracy.to_dict(),
            "macro_auc": self.macro_auc.to_dict(),
            "flagged": list(self.flagged),
        }


@dataclass(frozen=True)
class SubgroupReport:
    """All images together (``overall``) and each subgroup, in order of group name."""

    n: int
    overall: SubgroupMetrics
    groups: list[SubgroupMetrics]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "overall": self.overall.to_dict(),
            "groups": {g.group: g.to_dict() for g in self.groups},
            "flagged": [g.group for g in self.groups if g.flagged],
        }


def subgroup_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | list,
    class_names: list[str],
    *,
    positive_class: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> SubgroupReport:
    """Accuracy, balanced accuracy and macro AUC overall and per value of ``groups`` (one label per image)."""
    labels, probs = checked_predictions(labels, probs, class_names)
    group_of = np.array([str(g) for g in groups], dtype=object)
    if len(group_of) != len(labels):
        raise ValueError(f"{len(group_of)} group labels but {len(labels)} images")
    positive = positive_index(class_names, positive_class)
    overall = _metrics("all", labels, probs, positive, n_bootstrap, seed, None)
    per_group = [
        _metrics(name, labels[group_of == name], probs[group_of == name], positive, n_bootstrap, seed, overall)
        for name in sorted(set(group_of.tolist()))
    ]
    return SubgroupReport(len(labels), overall, per_group)


def _metrics(
    name: str,
    labels: np.ndarray,
    probs: np.ndarray,
    positive: int,
    n_bootstrap: int,
    seed: int,
    overall: SubgroupMetrics | None,
) -> SubgroupMetrics:
    n, n_classes = len(labels), probs.shape[1]
    pred = probs.argmax(axis=1)
    # As in roc_analysis: resampling every class's AUC costs too much above MAX_CLASSES_WITH_DETAIL classes.
    auc_resampled = n_classes <= MAX_CLASSES_WITH_DETAIL

    def statistic(idx: np.ndarray, with_auc: bool = True) -> np.ndarray:
        acc, bacc = accuracy_resamples(labels, pred, n_classes, idx)
        auc = macro_auc_resamples(labels, probs, idx, positive=positive) if with_auc else np.full(len(idx), np.nan)
        return np.column_stack([acc, bacc, auc])

    point = statistic(np.arange(n)[None, :])[0]
    samples = None
    if n_bootstrap > 0:
        samples = bootstrap(lambda idx: statistic(idx, auc_resampled), n, n_bootstrap=n_bootstrap, seed=seed)
    estimates = []
    for k in range(len(METRICS)):
        if np.isnan(point[k]):
            estimates.append(Estimate.undefined(n, _auc_reason(labels)))
            continue
        if samples is None or (METRICS[k] == "macro_auc" and not auc_resampled):
            why = ("no bootstrap resamples were asked for" if samples is None
                   else f"no CI above {MAX_CLASSES_WITH_DETAIL} classes ({n_classes} here)")
            estimates.append(Estimate(float(point[k]), None, n, why))
            continue
        ci, reason = percentile_ci(samples[:, k])
        estimates.append(Estimate(float(point[k]), ci, n, reason))
    flagged = []
    if overall is not None:
        for metric, estimate in zip(METRICS, estimates, strict=True):
            whole = getattr(overall, metric).value
            if estimate.ci95 is not None and whole is not None and estimate.ci95[1] < whole:
                flagged.append(metric)
    return SubgroupMetrics(name, n, *estimates, flagged=flagged)


def _auc_reason(labels: np.ndarray) -> str:
    # With two classes present every present class has images with and without it, so one is the case.
    return f"an AUC needs images of at least two classes; these {len(labels)} images are all of one class"
