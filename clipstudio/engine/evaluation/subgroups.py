r"""Metrics per subgroup (a pattern on the image paths, or a metadata column), flagged when clearly worse.

Each subgroup gets n, accuracy, balanced accuracy and macro AUC with percentile-bootstrap 95% CIs
over its own images. A subgroup is flagged on a metric when even the upper end of its CI lies below
the figure for all images together: the shortfall is unlikely to be chance. Small subgroups have
wide CIs and are rarely flagged; that is the honest answer, not a failure to look.

The subgroup of each image can come from a pattern on its path (``groups_from_pattern``), the same
kind of pattern that keeps a patient's images in one split: the first capture group names the
subgroup, e.g. ``(site\d+)/`` on ``site2/pneumonia/img_01.png``. Or from a metadata column
(``groups_from_column``): an annotation file's other columns, or a metadata CSV named for class
folders (``engine.data.metadata``); ``patient`` means each image's patient group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipstudio.engine.data.dataset import Sample
from clipstudio.engine.data.metadata import PATIENT, has_patient_alias, metadata_columns
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
    "NO_VALUE",
    "UNMATCHED",
    "Grouping",
    "SubgroupMetrics",
    "SubgroupReport",
    "compile_group_pattern",
    "groups_from_column",
    "groups_from_pattern",
    "spelled_column",
    "subgroup_metrics",
]

METRICS = ("accuracy", "balanced_accuracy", "macro_auc")
UNMATCHED = "(no match)"  # the subgroup of images whose path the pattern does not match
NO_VALUE = "(no value)"  # the subgroup of images without a value in the metadata column


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
    by: str = ""  # the same, short: "column 'sex'", "pattern '(site\d)/'"

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "by": self.by,
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
    by: str = "",
) -> SubgroupReport:
    """Accuracy, balanced accuracy and macro AUC overall and per value of ``groups`` (one label per image).

    ``grouping``: how the groups were made, in words, kept with the report; ``by``: the same, short.
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
    return SubgroupReport(len(labels), overall, per_group, grouping, by)


@dataclass(frozen=True)
class Grouping:
    """How images are put in subgroups: a ``pattern`` on their paths, or a metadata ``column`` (one of them)."""

    pattern: str | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        if (self.pattern is None) == (self.column is None):
            raise ValueError("a grouping is by a pattern or by a column, exactly one of them")

    @property
    def by(self) -> str:
        """Short, for JSON and headings: "column 'sex'", "pattern '^(site\\d+)/'"."""
        return f"column '{self.column}'" if self.column is not None else f"pattern '{self.pattern}'"

    @property
    def words(self) -> str:
        """In words, for the report: what grouped the images."""
        if self.column is None:
            return f"pattern '{self.pattern}' on each image's path"
        if self.column == PATIENT:
            return "each image's patient (the dataset's group)"
        return f"metadata column '{self.column}'"

    def groups(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        root: str | os.PathLike | None = None,
        samples: Sequence[Sample] = (),
    ) -> list[str]:
        """Each image's subgroup (``groups_from_pattern`` or ``groups_from_column``)."""
        if self.column is None:
            return groups_from_pattern(paths, self.pattern, root)
        return groups_from_column(samples, self.column, paths)


def groups_from_column(
    samples: Sequence[Sample], column: str, paths: Sequence[str | os.PathLike] | None = None
) -> list[str]:
    """Each image's subgroup: its value in the metadata ``column`` (``PATIENT``: its patient group), or
    ``NO_VALUE``. One per path in ``paths`` (the sample of that path), default one per sample.

    A column none of the samples has is a ConfigError listing the ones they have; so is a column
    without a value for any of the images.
    """
    samples = list(samples)
    name = spelled_column(samples, column)
    if name == PATIENT and has_patient_alias(samples):
        value_of = {str(s.path): s.group for s in samples}
    else:
        value_of = {str(s.path): s.metadata.get(name) for s in samples}
    wanted = [str(s.path) for s in samples] if paths is None else [str(p) for p in paths]
    groups = [value_of.get(p) or NO_VALUE for p in wanted]
    if wanted and all(g == NO_VALUE for g in groups):
        raise ConfigError(f"The metadata column '{name}' has no value for any of the {len(wanted)} images.")
    return groups


def spelled_column(samples: Sequence[Sample], column: str) -> str:
    """``column`` as the samples spell it (``--group-by SEX`` on a ``sex`` column: "sex"), or ``PATIENT``;
    a ConfigError when they have no such column."""
    if column.strip().casefold() == PATIENT and has_patient_alias(samples):
        return PATIENT
    return _column_named(column, metadata_columns(samples))


def _column_named(column: str, available: list[str]) -> str:
    """The column as the samples spell it (an exact name, else the one that matches ignoring case)."""
    if column in available:
        return column
    folded = [c for c in available if c.casefold() == column.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    if not available:
        raise ConfigError(f"No metadata column '{column}': the images have no metadata (class folders get it "
                          "from a metadata CSV with an image column).")
    raise ConfigError(f"No metadata column '{column}'; columns available: {', '.join(available)}.")


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
