"""Clinical-grade evaluation of one model's predictions: AUC and curves, calibration, operating point,
conformal prediction sets and subgroups, in one call and one JSON block.

Everything fitted (the temperature, the operating point's threshold, the conformal threshold) is
fitted on the validation predictions only and then reported on test; without validation those parts
carry a reason instead of being fitted on test. When a temperature was fitted, every probability
downstream (AUC, operating point, prediction sets, subgroups) is the calibrated one, the same the app
shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.calibration import CalibrationResult, calibration_report, softmax
from clipstudio.engine.evaluation.conformal import DEFAULT_COVERAGE, ConformalResult, conformal_report
from clipstudio.engine.evaluation.operating_point import (
    OperatingPoint,
    OperatingPointMetrics,
    apply_operating_point,
    choose_operating_point,
)
from clipstudio.engine.evaluation.roc import RocAnalysis, checked_predictions, positive_index, roc_analysis
from clipstudio.engine.evaluation.subgroups import SubgroupReport, subgroup_metrics

__all__ = ["ClinicalMetrics", "OperatingPointSpec", "clinical_metrics", "operating_point_on_test"]

# "youden", {"target_sensitivity": 0.95}, {"target_specificity": 0.9}, a stored OperatingPoint, or None.
OperatingPointSpec = str | dict | OperatingPoint | None
_TARGET_RULES = ("target_sensitivity", "target_specificity")


@dataclass(frozen=True)
class ClinicalMetrics:
    """The clinical metrics of one model on test images; ``to_dict()`` is the JSON block."""

    n: int
    class_names: list[str]
    auc: RocAnalysis
    calibration: CalibrationResult
    conformal: ConformalResult
    operating_point: OperatingPointMetrics | None = None  # binary tasks only
    operating_point_reason: str | None = None  # why there is none (binary tasks)
    subgroups: SubgroupReport | None = None

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    def to_dict(self) -> dict:
        """Keys ``auc``, ``roc``, ``calibration``, ``conformal``; ``operating_point`` (binary); ``subgroups``."""
        out: dict = {
            "auc": self.auc.auc_dict(),
            "roc": self.auc.curves_dict(),
            "calibration": self.calibration.to_dict(),
        }
        if self.binary:
            if self.operating_point is not None:
                out["operating_point"] = self.operating_point.to_dict()
            else:
                out["operating_point"] = {"n": self.n, "reason": self.operating_point_reason}
        out["conformal"] = self.conformal.to_dict()
        if self.subgroups is not None:
            out["subgroups"] = self.subgroups.to_dict()
        return out


def clinical_metrics(
    test_labels: np.ndarray,
    test_logits: np.ndarray,
    class_names: list[str],
    *,
    val_labels: np.ndarray | None = None,
    val_logits: np.ndarray | None = None,
    coverage: float = DEFAULT_COVERAGE,
    conformal_score: str = "lac",
    operating_point: OperatingPointSpec = "youden",
    positive_class: str | None = None,
    groups: np.ndarray | list | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ClinicalMetrics:
    """All clinical metrics of test predictions, with temperature, thresholds and sets fitted on validation.

    ``*_labels`` (N,) class indices; ``*_logits`` (N, C) the model's logits (e.g. logit scale times
    cosine similarity). ``operating_point`` (binary tasks): a rule to choose one on validation,
    ``"youden"``, ``{"target_sensitivity": 0.95}`` or ``{"target_specificity": 0.9}``; a stored
    ``OperatingPoint`` to apply as it is; or None for none. ``positive_class`` defaults to the second
    class. ``groups``: one subgroup label per test image. ``n_bootstrap=0`` skips the CIs.
    """
    test_labels, test_logits = checked_predictions(test_labels, test_logits, class_names)
    if not len(test_labels):
        raise DataError("no test images to evaluate.")
    has_val = val_labels is not None and val_logits is not None and len(val_labels) > 0
    if has_val:
        val_labels, val_logits = checked_predictions(val_labels, val_logits, class_names)
    if groups is not None and len(groups) != len(test_labels):
        raise ValueError(f"{len(groups)} group labels but {len(test_labels)} test images")
    positive = positive_index(class_names, positive_class)

    calibration = calibration_report(
        test_labels, test_logits,
        val_labels=val_labels if has_val else None, val_logits=val_logits if has_val else None,
    )
    temperature = calibration.temperature or 1.0
    test_probs = softmax(test_logits, temperature)
    val_probs = softmax(val_logits, temperature) if has_val else None
    auc = roc_analysis(
        test_labels, test_probs, class_names, positive_class=class_names[positive], n_bootstrap=n_bootstrap,
        seed=seed,
    )
    conformal = conformal_report(
        test_labels, test_probs, val_labels=val_labels if has_val else None, val_probs=val_probs,
        coverage=coverage, score=conformal_score,
    )
    point, point_reason = None, None
    if len(class_names) == 2:
        point, point_reason = _operating_point(
            operating_point, test_labels, test_logits, val_labels if has_val else None,
            val_probs, list(class_names), positive, temperature,
        )
    subgroups = None
    if groups is not None:
        subgroups = subgroup_metrics(
            test_labels, test_probs, groups, class_names, positive_class=class_names[positive],
            n_bootstrap=n_bootstrap, seed=seed,
        )
    return ClinicalMetrics(
        n=len(test_labels),
        class_names=list(class_names),
        auc=auc,
        calibration=calibration,
        conformal=conformal,
        operating_point=point,
        operating_point_reason=point_reason,
        subgroups=subgroups,
    )


def operating_point_on_test(
    spec: OperatingPointSpec,
    test_labels: np.ndarray,
    test_logits: np.ndarray,
    class_names: list[str],
    *,
    val_labels: np.ndarray | None = None,
    val_logits: np.ndarray | None = None,
    temperature: float | None = None,
    positive_class: str | None = None,
) -> tuple[OperatingPointMetrics | None, str | None]:
    """A binary task's operating point, chosen on validation by ``spec`` (or a stored one applied), on test.

    Returns the test figures, or None and the reason there are none. ``temperature``: the calibration
    fitted on validation (None: the model's own probabilities), as ``clinical_metrics`` uses it. This
    is what the app calls when the user picks another rule: nothing is bootstrapped, so it is instant.
    """
    test_labels, test_logits = checked_predictions(test_labels, test_logits, class_names)
    if len(class_names) != 2:
        raise ValueError(f"an operating point needs two classes, not {len(class_names)}")
    has_val = val_labels is not None and val_logits is not None and len(val_labels) > 0
    if has_val:
        val_labels, val_logits = checked_predictions(val_labels, val_logits, class_names)
    t = temperature or 1.0
    return _operating_point(
        spec, test_labels, test_logits, val_labels if has_val else None,
        softmax(val_logits, t) if has_val else None, list(class_names),
        positive_index(class_names, positive_class), t,
    )


def _operating_point(
    spec: OperatingPointSpec,
    test_labels: np.ndarray,
    test_logits: np.ndarray,
    val_labels: np.ndarray | None,
    val_probs: np.ndarray | None,
    class_names: list[str],
    positive: int,
    temperature: float,
) -> tuple[OperatingPointMetrics | None, str | None]:
    """The operating point applied to test, or None and the reason there is none."""
    if spec is None:
        return None, "no operating point was asked for"
    if isinstance(spec, OperatingPoint):
        if spec.positive_class not in class_names:
            raise ConfigError(
                f"the stored operating point is for class '{spec.positive_class}', which is not one of "
                f"{', '.join(class_names)}."
            )
        column = class_names.index(spec.positive_class)
        # A stored point keeps the probability scale it was chosen on.
        scores = softmax(test_logits, spec.temperature)[:, column]
        return apply_operating_point(spec, test_labels == column, scores), None
    rule, target = _rule(spec)
    if val_labels is None or val_probs is None:
        return None, "no validation images: the operating point is chosen on validation only, never on test"
    try:
        point = choose_operating_point(
            val_labels == positive, val_probs[:, positive], positive_class=class_names[positive], rule=rule,
            target=target, temperature=temperature,
        )
    except DataError as exc:
        return None, str(exc)
    scores = softmax(test_logits, temperature)[:, positive]
    return apply_operating_point(point, test_labels == positive, scores), None


def _rule(spec: str | dict) -> tuple[str, float | None]:
    if spec == "youden":
        return "youden", None
    if isinstance(spec, dict) and len(spec) == 1:
        ((rule, target),) = spec.items()
        if rule in _TARGET_RULES:
            return rule, float(target)
    raise ConfigError(
        f"operating point {spec!r} is not 'youden', {{'target_sensitivity': x}} or {{'target_specificity': x}}."
    )
