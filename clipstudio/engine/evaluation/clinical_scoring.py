"""Zero-shot scoring with the clinical metrics: the report images, with everything fitted on validation.

``score_clinical`` scores the report images (test) and the validation images of the same dataset
(``split_policy.selection_part``) with one model, keeps both sets of logits, and hands them to
``clinical_metrics``: the temperature, the operating point's threshold and the conformal threshold
are fitted on validation only. When there is no validation part, or it shares images with the
report part (a report that fell back to the val split, or the whole dataset), nothing is fitted and
the blocks say why. The CLI (``zeroshot``, ``eval``) and the app call it, so they report the same
numbers.

A training run keeps what was fitted on its validation images in ``calibration.json``
(``save_run_calibration``); later evaluations apply its operating point (``run_operating_point``).

A scoring keeps the validation logits, so another operating point rule (``with_operating_point``)
or subgroups by a path pattern (``with_subgroups``) can be had later without scoring again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.config import EVAL_BATCH_SIZE, DataConfig, operating_point_rule
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.clinical import (
    ClinicalMetrics,
    OperatingPointSpec,
    clinical_metrics,
    operating_point_on_test,
)
from clipstudio.engine.evaluation.conformal import DEFAULT_COVERAGE
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.operating_point import OperatingPoint
from clipstudio.engine.evaluation.split_policy import EvaluationPart, selection_part
from clipstudio.engine.evaluation.subgroups import Grouping, subgroup_metrics
from clipstudio.engine.evaluation.zero_shot import ZeroShotResult, score_dataset
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.runs.layout import read_calibration, write_calibration

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from clipstudio.engine.models.base import ImageTextModel

__all__ = [
    "ClinicalScoring",
    "calibrated_predictions",
    "operating_point_spec",
    "run_operating_point",
    "save_run_calibration",
    "score_clinical",
    "validation_part",
    "with_operating_point",
    "with_subgroups",
]

# Selection parts that hold validation images; the "train" fallback (val fraction 0) does not.
_VALIDATION_PARTS = ("val", "carved-val")


@dataclass(frozen=True)
class ClinicalScoring:
    """One model on the report images: the usual metrics and the clinical ones, and what was fitted on.

    ``clinical`` is None only when the scoring was cancelled. ``validation`` is the part the
    temperature, threshold and prediction sets were fitted on; None, with ``validation_reason``, when
    nothing was fitted.
    """

    result: ZeroShotResult  # the report images, with labels and logits
    clinical: ClinicalMetrics | None
    validation: EvaluationPart | None
    validation_reason: str | None = None
    # The validation images' labels and logits (None when nothing was fitted); never in to_dict.
    val_labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    val_logits: np.ndarray | None = field(default=None, repr=False, compare=False)

    def validation_dict(self) -> dict:
        """The ``validation`` JSON block: the split, its description and n, or why there is none."""
        if self.validation is None:
            return {"split": None, "n": 0, "reason": self.validation_reason}
        return {
            "split": self.validation.name,
            "description": self.validation.description,
            "n": len(self.validation.dataset),
        }

    def to_dict(self, include_predictions: bool = False) -> dict:
        """``ZeroShotResult.to_dict()`` plus the clinical blocks and ``validation``."""
        out = self.result.to_dict(include_predictions=include_predictions)
        if self.clinical is not None:
            out.update(self.clinical.to_dict())
        out["validation"] = self.validation_dict()
        return out


def operating_point_spec(spec: str | OperatingPoint | None) -> OperatingPointSpec:
    """A spelled rule ("youden", "sensitivity=0.95", "specificity=0.9") as ``clinical_metrics`` takes it.

    A stored ``OperatingPoint`` or None passes through unchanged.
    """
    if not isinstance(spec, str):
        return spec
    rule, target = operating_point_rule(spec)
    return rule if target is None else {rule: target}


def validation_part(dataset: Dataset, data: DataConfig, report: EvaluationPart) -> tuple[EvaluationPart | None, str | None]:
    """The validation images to fit on (``selection_part``), or None and why there are none.

    None too when they share an image with ``report``: nothing is fitted on the images it is reported on.
    """
    try:
        part = selection_part(dataset, data)
    except DataError as exc:
        return None, str(exc).rstrip(".")
    if part.name not in _VALIDATION_PARTS or not len(part.dataset):
        return None, f"no validation images to fit on (only the {part.description})"
    reported = {str(p) for p in report.dataset.paths}
    if any(str(p) in reported for p in part.dataset.paths):
        return None, (
            f"the validation images ({part.description}) are among the evaluated images ({report.description}); "
            "nothing is fitted on the images it is reported on"
        )
    return part, None


def score_clinical(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    prompts: PromptSet,
    data: DataConfig,
    report: EvaluationPart,
    *,
    coverage: float = DEFAULT_COVERAGE,
    operating_point: str | OperatingPoint | None = "youden",
    n_bootstrap: int = 1000,
    with_predictions: bool = True,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> ClinicalScoring:
    """Score ``report`` (a part of ``dataset``) and fit temperature, threshold and sets on its validation part.

    ``data``: the split settings that carve the validation part when ``dataset`` has no val split
    (a run's own, so it is the run's validation). ``operating_point`` (binary tasks): a rule as
    ``EvalConfig.operating_point`` spells it, a stored ``OperatingPoint`` to apply as it is, or None.
    """
    spec = operating_point_spec(operating_point)  # a bad spelling fails before any encoding
    common = dict(batch_size=batch_size, callback=callback, should_stop=should_stop)
    result = score_dataset(
        store, model, report.dataset, prompts, with_predictions=with_predictions, with_logits=True,
        n_bootstrap=n_bootstrap, **common,
    )
    if result.cancelled:
        return ClinicalScoring(result, None, None, "cancelled")
    validation, reason = validation_part(dataset, data, report)
    val_labels = val_logits = None
    if validation is not None:
        try:
            val = score_dataset(
                store, model, validation.dataset, prompts, with_predictions=False, with_logits=True,
                n_bootstrap=0, **common,
            )
        except DataError as exc:  # e.g. none of the validation images could be read
            validation, reason = None, str(exc).rstrip(".")
        else:
            if val.cancelled:
                result.cancelled = True
                return ClinicalScoring(result, None, None, "cancelled")
            val_labels, val_logits = val.labels, val.logits
    clinical = clinical_metrics(
        result.labels, result.logits, result.class_names, val_labels=val_labels, val_logits=val_logits,
        coverage=coverage, operating_point=spec, n_bootstrap=n_bootstrap,
    )
    return ClinicalScoring(result, clinical, validation, reason, val_labels, val_logits)


def with_operating_point(scoring: ClinicalScoring, rule: str | OperatingPoint) -> ClinicalScoring:
    """The same scoring with its operating point chosen on validation by ``rule`` (binary tasks).

    ``rule`` as ``EvalConfig.operating_point`` spells it ("youden", "sensitivity=0.95", ...) or a
    stored ``OperatingPoint``. Without validation images the scoring comes back with no operating
    point and the reason; nothing is rescored, so this is instant.
    """
    clinical = scoring.clinical
    if clinical is None or not clinical.binary:
        raise ValueError("an operating point needs a binary scoring that was not cancelled")
    result = scoring.result
    point, reason = operating_point_on_test(
        operating_point_spec(rule), result.labels, result.logits, clinical.class_names,
        val_labels=scoring.val_labels, val_logits=scoring.val_logits,
        temperature=clinical.calibration.temperature, positive_class=clinical.auc.positive_class,
    )
    return replace(scoring, clinical=replace(clinical, operating_point=point, operating_point_reason=reason))


def with_subgroups(
    scoring: ClinicalScoring,
    grouping: str | Grouping,
    root: str | os.PathLike | None = None,
    *,
    samples: Sequence[Sample] = (),
    n_bootstrap: int = 1000,
) -> ClinicalScoring:
    """The same scoring with subgroups of its report images, by ``grouping``: a pattern (a plain string
    too) whose first capture group is searched in each image's path below ``root``, or a metadata
    column of ``samples`` (the report images' samples, carrying their metadata).

    The probabilities are the calibrated ones, as in ``clinical_metrics``. A bad pattern, one that
    matches no image, or a column the samples lack is a ConfigError.
    """
    grouping = Grouping(pattern=grouping) if isinstance(grouping, str) else grouping
    clinical, result = scoring.clinical, scoring.result
    if clinical is None or result.logits is None:
        raise ValueError("subgroups need a scoring with logits that was not cancelled")
    if len(result.predictions) != len(result.labels):
        raise ValueError("subgroups need the scoring's per-image predictions (score with with_predictions=True)")
    groups = grouping.groups([p["path"] for p in result.predictions], root=root, samples=samples)
    report = subgroup_metrics(
        result.labels, softmax(result.logits, clinical.calibration.temperature or 1.0), groups,
        clinical.class_names, positive_class=clinical.auc.positive_class, n_bootstrap=n_bootstrap,
        grouping=grouping.words, by=grouping.by,
    )
    return replace(scoring, clinical=replace(clinical, subgroups=report))


def run_operating_point(run_dir: str | os.PathLike) -> OperatingPoint | None:
    """The operating point stored in the run folder's calibration.json, or None."""
    stored = read_calibration(run_dir)
    point = stored.get("operating_point") if stored else None
    return OperatingPoint.from_dict(point) if point else None


def save_run_calibration(run_dir: str | os.PathLike, scoring: ClinicalScoring) -> bool:
    """Store the temperature and operating point fitted on validation in the run folder.

    Returns whether anything was written: nothing is when nothing was fitted (no validation images).
    """
    clinical = scoring.clinical
    if clinical is None or scoring.validation is None or clinical.calibration.temperature is None:
        return False
    point = clinical.operating_point.point.to_dict() if clinical.operating_point is not None else None
    write_calibration(
        run_dir,
        {
            "temperature": clinical.calibration.temperature,
            "operating_point": point,
            "classes": list(clinical.class_names),
            "fitted_on": scoring.validation_dict(),
        },
    )
    return True


def calibrated_predictions(
    result: ZeroShotResult,
    temperature: float | None,
    point: OperatingPoint | None = None,
    *,
    sets: np.ndarray | None = None,
    top_k: int = 5,
) -> tuple[list[dict], list[list[int]]]:
    """Per-image predictions and the confusion matrix as the app shows them: probabilities calibrated
    (``softmax(logits / temperature)``), and for a binary task with ``point`` the predicted class is the
    one its threshold calls (else the most probable class). ``sets`` (N, C) bool, the conformal
    prediction sets (``ConformalResult.sets``), adds ``set``: each image's plausible classes by name.

    ``result`` must hold logits and predictions (``score_dataset(..., with_logits=True)``). Each
    prediction keeps ``path`` and ``true``; ``pred`` and ``topk`` (most probable first) are recomputed.
    """
    if result.logits is None or result.labels is None:
        raise ValueError("the result holds no logits (score with with_logits=True)")
    if len(result.predictions) != len(result.labels):
        raise ValueError(f"{len(result.predictions)} predictions but {len(result.labels)} labels")
    names = list(result.class_names)
    probs = softmax(result.logits, temperature or 1.0)
    pred = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    if point is not None and len(names) == 2:
        positive = names.index(point.positive_class)
        called = softmax(result.logits, point.temperature)[:, positive] >= point.threshold
        pred = np.where(called, positive, 1 - positive)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : max(1, min(top_k, len(names)))]
    top = np.take_along_axis(probs, order, axis=1).tolist()
    predictions = [
        {**old, "pred": names[guess], "topk": [[names[c], p] for c, p in zip(classes, ps, strict=True)]}
        for old, guess, classes, ps in zip(result.predictions, pred.tolist(), order.tolist(), top, strict=True)
    ]
    if sets is not None:
        if sets.shape != probs.shape:
            raise ValueError(f"prediction sets of shape {sets.shape} do not fit {probs.shape} probabilities")
        for row, members in zip(predictions, sets.tolist(), strict=True):
            row["set"] = [name for name, inside in zip(names, members, strict=True) if inside]
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (result.labels.astype(np.int64), pred.astype(np.int64)), 1)
    return predictions, matrix.tolist()
