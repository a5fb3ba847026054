"""Paired comparison of two models' predictions on the same images (before/after, two runs, WiSE-FT).

Differences are B minus A. Their 95% CIs come from a paired bootstrap: each resample draws images,
and both models are scored on those same images, so image-to-image difficulty cancels out. A model
is called better only when the CI excludes 0. McNemar's test asks whether the images only one model
gets right split unevenly between the two: an exact binomial test when fewer than 25 images are
discordant, else the chi-square test with continuity correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.bootstrap import Estimate, accuracy_resamples, bootstrap, percentile_ci
from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.roc import (
    MAX_CLASSES_WITH_DETAIL,
    checked_predictions,
    macro_auc_resamples,
    positive_index,
)

if TYPE_CHECKING:
    from clipstudio.engine.evaluation.zero_shot import ZeroShotResult

__all__ = [
    "McNemarTest",
    "PairedComparison",
    "PairedDifference",
    "compare_paired",
    "compare_results",
    "mcnemar_test",
]

EXACT_BELOW = 25  # discordant images under which McNemar's test is the exact binomial one


@dataclass(frozen=True)
class PairedDifference:
    """One metric for both models and the difference B - A with its paired-bootstrap 95% CI."""

    metric: str
    a: float | None
    b: float | None
    difference: Estimate
    better: str | None  # the better model's name, only when the CI excludes 0
    verdict: str

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference.to_dict(),
            "better": self.better,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class McNemarTest:
    """McNemar's test on the images exactly one model gets right."""

    only_a_right: int
    only_b_right: int
    p_value: float
    method: str  # "exact binomial" or "chi-square with continuity correction"

    def to_dict(self) -> dict:
        return {
            "only_a_right": self.only_a_right,
            "only_b_right": self.only_b_right,
            "p_value": self.p_value,
            "method": self.method,
        }


@dataclass(frozen=True)
class PairedComparison:
    """Two models on the same ``n`` images: accuracy, balanced accuracy and macro AUC differences."""

    n: int
    names: tuple[str, str]
    accuracy: PairedDifference
    balanced_accuracy: PairedDifference
    macro_auc: PairedDifference
    mcnemar: McNemarTest

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "a": self.names[0],
            "b": self.names[1],
            "difference": "b - a",
            "accuracy": self.accuracy.to_dict(),
            "balanced_accuracy": self.balanced_accuracy.to_dict(),
            "macro_auc": self.macro_auc.to_dict(),
            "mcnemar": self.mcnemar.to_dict(),
        }


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarTest:
    """McNemar's test of equal accuracy from each image's right/wrong under models A and B (two-sided)."""
    correct_a = np.asarray(correct_a, dtype=bool)
    correct_b = np.asarray(correct_b, dtype=bool)
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    discordant = only_a + only_b
    if discordant < EXACT_BELOW:
        # Two-sided exact: twice the smaller tail of Binomial(discordant, 1/2), at most 1.
        tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant
        return McNemarTest(only_a, only_b, min(1.0, 2 * tail), "exact binomial")
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    # The chi-square (1 degree of freedom) survival function, via the normal: P(|Z| > sqrt(x)).
    return McNemarTest(only_a, only_b, math.erfc(math.sqrt(statistic / 2)), "chi-square with continuity correction")


def compare_paired(
    labels: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    class_names: list[str],
    *,
    names: tuple[str, str] = ("A", "B"),
    positive_class: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """Compare models A and B on the same images: ``labels`` (N,), ``probs_a``/``probs_b`` (N, C).

    ``positive_class`` picks the score of the binary AUC (default: the second class).
    """
    labels, probs_a = checked_predictions(labels, probs_a, class_names)
    _, probs_b = checked_predictions(labels, probs_b, class_names)
    n, n_classes = len(labels), len(class_names)
    positive = positive_index(class_names, positive_class)
    pred_a, pred_b = probs_a.argmax(axis=1), probs_b.argmax(axis=1)

    # Resampling the AUC of every class is what costs: above MAX_CLASSES_WITH_DETAIL classes the AUC
    # difference is given without a CI (so without a verdict), as roc_analysis gives the AUCs themselves.
    auc_resampled = n_classes <= MAX_CLASSES_WITH_DETAIL

    def metrics(idx: np.ndarray, with_auc: bool = True) -> np.ndarray:
        acc_a, bacc_a = accuracy_resamples(labels, pred_a, n_classes, idx)
        acc_b, bacc_b = accuracy_resamples(labels, pred_b, n_classes, idx)
        if with_auc:
            auc_a = macro_auc_resamples(labels, probs_a, idx, positive=positive)
            auc_b = macro_auc_resamples(labels, probs_b, idx, positive=positive)
        else:
            auc_a = auc_b = np.full(len(idx), np.nan)
        return np.column_stack([acc_a, acc_b, bacc_a, bacc_b, auc_a, auc_b])

    point = metrics(np.arange(n)[None, :])[0] if n else np.full(6, np.nan)
    # One resample stream for both models: the pairing.
    samples = None
    if n and n_bootstrap > 0:
        samples = bootstrap(lambda idx: metrics(idx, auc_resampled), n, n_bootstrap=n_bootstrap, seed=seed)
    differences = []
    for k, metric in enumerate(("accuracy", "balanced_accuracy", "macro_auc")):
        diff = None if samples is None else samples[:, 2 * k + 1] - samples[:, 2 * k]
        no_ci = "no bootstrap resamples were asked for"
        if metric == "macro_auc" and not auc_resampled:
            diff, no_ci = None, f"no CI above {MAX_CLASSES_WITH_DETAIL} classes ({n_classes} here)"
        differences.append(_difference(metric, point[2 * k], point[2 * k + 1], diff, n, names, no_ci))
    return PairedComparison(
        n, tuple(names), *differences, mcnemar=mcnemar_test(pred_a == labels, pred_b == labels)
    )


def compare_results(
    a: ZeroShotResult, b: ZeroShotResult, *, names: tuple[str, str] = ("A", "B"), n_bootstrap: int = 1000
) -> PairedComparison:
    """Compare two scorings of the same images (``score_dataset(..., with_logits=True)``), B minus A.

    Both on the models' own probabilities (softmax of their logits, no temperature): accuracy does
    not depend on it, and the AUCs compare the models' own rankings. Scorings of different images or
    classes are a DataError.
    """
    for side, result in zip(names, (a, b), strict=True):
        if result.labels is None or result.logits is None:
            raise ValueError(f"the scoring of {side} holds no logits (score with with_logits=True)")
    if list(a.class_names) != list(b.class_names):
        raise DataError(f"{names[0]} and {names[1]} were scored on different classes "
                        f"({', '.join(a.class_names)} / {', '.join(b.class_names)}); compare them on the same data.")
    paths_a, paths_b = [p.get("path") for p in a.predictions], [p.get("path") for p in b.predictions]
    if len(a.labels) != len(b.labels) or paths_a != paths_b or not np.array_equal(a.labels, b.labels):
        raise DataError(f"{names[0]} and {names[1]} were not scored on the same images "
                        f"({len(a.labels)} and {len(b.labels)}); a paired comparison needs the very same ones.")
    return compare_paired(
        a.labels, softmax(a.logits), softmax(b.logits), list(a.class_names), names=names, n_bootstrap=n_bootstrap
    )


def _difference(
    metric: str, a: float, b: float, samples: np.ndarray | None, n: int, names: tuple[str, str],
    no_ci: str = "no bootstrap resamples were asked for",
) -> PairedDifference:
    label = metric.replace("_", " ")
    if np.isnan(a) or np.isnan(b):
        reason = "no images" if not n else f"{label} is undefined on these images (a class is missing)"
        return PairedDifference(metric, None, None, Estimate.undefined(n, reason), None, f"No comparison: {reason}.")
    a, b = float(a), float(b)
    if samples is None:
        return PairedDifference(metric, a, b, Estimate(b - a, None, n, no_ci), None, f"No verdict: {no_ci}.")
    ci, reason = percentile_ci(samples)
    estimate = Estimate(b - a, ci, n, reason)
    if ci is None:
        return PairedDifference(metric, a, b, estimate, None, f"No verdict: {reason}.")
    if ci[0] > 0:
        better = names[1]
    elif ci[1] < 0:
        better = names[0]
    else:
        return PairedDifference(
            metric, a, b, estimate, None, f"No difference shown: the 95% CI of the {label} difference includes 0."
        )
    return PairedDifference(
        metric, a, b, estimate, better, f"{better} is better: the 95% CI of the {label} difference excludes 0."
    )
