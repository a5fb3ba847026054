r"""Metrics per subgroup (a pattern on the image paths, or the patient group of a split), flagged when clearly worse.

Each subgroup gets n, accuracy, balanced accuracy and macro AUC with percentile-bootstrap 95% CIs
over its own images. A subgroup is flagged on a metric when even the upper end of its CI lies below
the figure for all images together: the shortfall is unlikely to be chance. Small subgroups have
wide CIs and are rarely flagged; that is the honest answer, not a failure to look.

The subgroup of each image can come from a pattern on its path (``groups_from_pattern``), the same
kind of pattern that keeps a patient's images in one split: the first capture group names the
subgroup, e.g. ``(site\d+)/`` on ``site2/pneumonia/img_01.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.bootstrap import Estimate, accuracy_resamples, bootstrap, percentile_ci
from clipstudio.engine.evaluation.roc import (
    MAX_CLASSES_WITH_DETAIL,
    checked_predictions,
    macro_auc_resamples,
    positive_index,
)

__all__ = [
    "METRICS",
    "UNMATCHED",
    "SubgroupMetrics",
    "SubgroupReport",
    "compile_group_pattern",
    "groups_from_pattern",
    "subgroup_metrics",
]

METRICS = ("accuracy", "balanced_accuracy", "macro_auc")
UNMATCHED = "(no match)"  # the subgroup of images whose path the pattern does not match


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
    grouping: str = ""  # how the images were grouped, e.g. "pattern '(site\d)/' on each image's path"

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "grouping": self.grouping,
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
    grouping: str = "",
) -> SubgroupReport:
    """Accuracy, balanced accuracy and macro AUC overall and per value of ``groups`` (one label per image).

    ``grouping``: how the groups were made, in words, kept with the report.
    """
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
    return SubgroupReport(len(labels), overall, per_group, grouping)


def compile_group_pattern(pattern: str) -> re.Pattern:
    """The subgroup pattern compiled; a pattern that is not a valid regular expression is a ConfigError."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"Invalid subgroup pattern '{pattern}': {exc}.") from None


def groups_from_pattern(
    paths: Sequence[str | os.PathLike], pattern: str, root: str | os.PathLike | None = None
) -> list[str]:
    """Each image's subgroup: the first capture group (else the whole match) of ``pattern`` searched in
    its path below ``root`` (with '/' separators), or ``UNMATCHED``.

    A pattern that matches none of the paths is a ConfigError naming one of them.
    """
    regex = compile_group_pattern(pattern)
    groups = []
    for path in paths:
        text = _relative(Path(path), root)
        found = regex.search(text)
        value = (found.group(1) if regex.groups else found.group(0)) if found else None
        groups.append(value or UNMATCHED)
    if paths and all(g == UNMATCHED for g in groups):
        example = _relative(Path(paths[0]), root)
        raise ConfigError(
            f"The subgroup pattern '{pattern}' matches none of the {len(paths)} image paths (e.g. '{example}')."
        )
    return groups


def _relative(path: Path, root: str | os.PathLike | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:  # an image outside the dataset folder (allowed by a setting): its whole path
            pass
    return path.as_posix()


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
