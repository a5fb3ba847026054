"""The operating point of a binary classifier: a threshold chosen on validation, then reported on test.

An image is called positive when the probability of the positive class is >= the threshold. The
threshold is one of the validation scores, chosen by a rule: the largest Youden's J (sensitivity +
specificity - 1), the highest threshold that still reaches a target sensitivity (the most specific
such point), or the lowest that still reaches a target specificity (the most sensitive one). It is
never chosen on test. On test it gives sensitivity, specificity, PPV and NPV, each with its n and a
Wilson score 95% interval (a proportion's interval that stays sensible at 0% and 100% and small n,
where a bootstrap collapses to a single value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.bootstrap import Estimate
from clipstudio.engine.evaluation.roc import binary_curve_counts

__all__ = [
    "RULES",
    "OperatingPoint",
    "OperatingPointMetrics",
    "apply_operating_point",
    "choose_operating_point",
    "wilson_interval",
]

RULES = ("youden", "target_sensitivity", "target_specificity", "fixed")
_Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on the positive class's probability and how it was chosen; stored in the run folder.

    ``temperature`` is the calibration the probabilities had when it was chosen: apply the threshold
    to ``softmax(logits / temperature)``. ``val_*`` are the figures on the validation images.
    """

    rule: str  # one of RULES; "fixed" = set by hand
    threshold: float
    positive_class: str
    target: float | None = None  # the sensitivity or specificity aimed at
    temperature: float = 1.0
    n: int = 0  # validation images it was chosen on
    val_sensitivity: float | None = None
    val_specificity: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OperatingPoint:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown operating point setting(s): {', '.join(unknown)}")
        missing = sorted({"rule", "threshold", "positive_class"} - set(data))
        if missing:
            raise ConfigError(f"operating point is missing: {', '.join(missing)}")
        if data["rule"] not in RULES:
            raise ConfigError(f"operating point rule {data['rule']!r} is not one of {', '.join(RULES)}")
        return cls(**data)


@dataclass(frozen=True)
class OperatingPointMetrics:
    """An operating point applied to test images: the 2x2 counts and four proportions with Wilson CIs."""

    point: OperatingPoint
    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: Estimate  # n = test images of the positive class
    specificity: Estimate  # n = the other test images
    ppv: Estimate  # n = test images called positive
    npv: Estimate  # n = test images called negative

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "threshold": self.point.threshold,
            "rule": self.point.rule,
            "target": self.point.target,
            "positive_class": self.point.positive_class,
            "fitted_on": {"split": "validation", "n": self.point.n},
            "confusion": {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn},
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            "ppv": self.ppv.to_dict(),
            "npv": self.npv.to_dict(),
            "interval": "Wilson score 95%",
        }


def choose_operating_point(
    positive: np.ndarray,
    scores: np.ndarray,
    *,
    positive_class: str,
    rule: str = "youden",
    target: float | None = None,
    temperature: float = 1.0,
) -> OperatingPoint:
    """Choose a threshold on validation images: ``positive`` (N,) bool truth, ``scores`` (N,) probabilities.

    ``rule``: "youden"; "target_sensitivity" or "target_specificity" with ``target`` in (0, 1].
    DataError when validation lacks positive or negative images.
    """
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        kind = f"'{positive_class}'" if not n_pos else f"other than '{positive_class}'"
        raise DataError(f"an operating point needs validation images of both kinds; there are none {kind}.")
    if rule not in RULES[:3]:
        raise ConfigError(f"operating point rule {rule!r} is not one of {', '.join(RULES[:3])}")
    if rule != "youden" and (target is None or not 0 < target <= 1):
        raise ConfigError(f"{rule.replace('_', ' ')} needs a target between 0 and 1; got {target}.")
    thresholds, tps, fps = binary_curve_counts(positive, scores)
    sensitivity = tps / n_pos
    specificity = 1 - fps / n_neg
    # Thresholds fall along the arrays, so the first index that qualifies is the most specific.
    if rule == "youden":
        best = int(np.argmax(sensitivity + specificity))  # ties: the first, the higher threshold
    elif rule == "target_sensitivity":
        best = int(np.flatnonzero(sensitivity >= target - 1e-12)[0])
    else:
        # Specificity only falls as the threshold does; the top score's group may already be too low.
        reach = np.flatnonzero(specificity >= target - 1e-12)
        if not len(reach):
            raise DataError(
                f"no threshold reaches a specificity of {target:.0%} on validation: the highest-scored "
                "images include too many negatives."
            )
        best = int(reach[-1])
    return OperatingPoint(
        rule=rule,
        threshold=float(thresholds[best]),
        positive_class=positive_class,
        target=None if rule == "youden" else float(target),
        temperature=float(temperature),
        n=len(positive),
        val_sensitivity=float(sensitivity[best]),
        val_specificity=float(specificity[best]),
    )


def apply_operating_point(point: OperatingPoint, positive: np.ndarray, scores: np.ndarray) -> OperatingPointMetrics:
    """Sensitivity, specificity, PPV and NPV on test images at ``point``'s threshold (score >= threshold)."""
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    called = np.asarray(scores, dtype=np.float64).reshape(-1) >= point.threshold
    tp = int(np.sum(called & positive))
    fp = int(np.sum(called & ~positive))
    fn = int(np.sum(~called & positive))
    tn = int(np.sum(~called & ~positive))
    name = point.positive_class
    return OperatingPointMetrics(
        point=point,
        n=len(positive),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=_proportion(tp, tp + fn, f"no test images of '{name}'"),
        specificity=_proportion(tn, tn + fp, f"no test images other than '{name}'"),
        ppv=_proportion(tp, tp + fp, "no test image is called positive at this threshold"),
        npv=_proportion(tn, tn + fn, "no test image is called negative at this threshold"),
    )


def wilson_interval(successes: int, n: int) -> list[float]:
    """Wilson score 95% interval of a proportion ``successes / n`` (n > 0)."""
    p = successes / n
    denominator = 1 + _Z95**2 / n
    centre = (p + _Z95**2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _proportion(successes: int, n: int, reason: str) -> Estimate:
    if not n:
        return Estimate.undefined(0, reason + ", so it is undefined")
    return Estimate(successes / n, wilson_interval(successes, n), n)
