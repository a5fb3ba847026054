"""Before/after: a run's fine-tuned model against the model it started from, on the same images.

Both models are scored with the run's own prompts, so the comparison is like with like; the
"after" side may be a WiSE-FT interpolation instead of the raw fine-tuned weights. Each side is
a JSON payload shaped like ``clipstudio zeroshot --json`` (class data) or ``clipstudio retrieve
--json`` (image-caption pairs).

Given the whole dataset (``source``), class data also gets the clinical metrics of the trained
model (fitted on the run's own validation part) and a paired comparison of the two models on the
same images. The temperature and operating point fitted then are stored in the run folder, and a
stored operating point is applied by later evaluations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE, RECALL_KS, WISE_ON_VALIDATION
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.clinical_scoring import (
    ClinicalScoring,
    run_operating_point,
    save_run_calibration,
    score_clinical,
    validation_part,
)
from clipstudio.engine.evaluation.conformal import DEFAULT_COVERAGE
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.evaluate import ZEROSHOT, evaluate_model, summary_metrics
from clipstudio.engine.evaluation.paired import PairedComparison, compare_paired
from clipstudio.engine.evaluation.split_policy import EvaluationPart
from clipstudio.engine.evaluation.wise import (
    WiseChoice,
    WiseInterpolator,
    check_alpha,
    choose_alpha,
)
from clipstudio.engine.evaluation.zero_shot import ZeroShotResult, score_dataset
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import (
    CALIBRATION_FILE,
    CORRECTIONS_FILE,
    checkpoint_folder,
    read_run_config,
    read_run_info,
    run_start_model_spec,
)

# Where the operating point of ``BeforeAfter.clinical`` came from.
STORED_POINT = "run folder"  # calibration.json, fitted on validation by an earlier evaluation
CHOSEN_POINT = "validation"  # chosen now on the validation images


@dataclass
class BeforeAfter:
    """The starting model's and the trained model's metrics on one dataset (split)."""

    kind: str  # "zeroshot" | "retrieval"
    split: str
    before: dict  # full payload, like `clipstudio zeroshot --json` / `retrieve --json`
    after: dict
    before_label: str  # e.g. the start model spec
    after_label: str  # e.g. "runs/x (checkpoint_best)" or "WiSE-FT alpha 0.5 of runs/x"
    before_summary: dict = field(default_factory=dict)  # headline numbers (evaluate.summary_metrics)
    after_summary: dict = field(default_factory=dict)
    cancelled: bool = False
    clinical: ClinicalScoring | None = None  # the trained model's clinical metrics (class data, with source)
    paired: PairedComparison | None = None  # before (A) vs after (B) on the same images
    operating_point_from: str | None = None  # STORED_POINT or CHOSEN_POINT (binary tasks)
    calibration_saved: Path | None = None  # the calibration.json written, if any
    wise_choice: WiseChoice | None = None  # with wise_alpha "val": the alpha chosen on validation, and how

    def to_dict(self) -> dict:
        out = {"before": self.before, "after": self.after}
        if self.paired is not None:
            out["paired"] = self.paired.to_dict()
        return out


def _corrections_note(run_dir: Path) -> str:
    """"; trained with N corrections to the dataset (corrections.csv)" when the run was, else ""."""
    n = int(read_run_info(run_dir).get("corrections_applied", 0))
    return f"; trained with {n} correction{'s' if n != 1 else ''} to the dataset ({CORRECTIONS_FILE})" if n else ""


def compare_run(
    run_dir: str | os.PathLike,
    dataset: Dataset,
    *,
    split: str = "all",
    wise_alpha: float | str | None = None,
    ks: Sequence[int] = RECALL_KS,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "auto",
    source: Dataset | None = None,
    coverage: float = DEFAULT_COVERAGE,
    operating_point: str | None = None,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> BeforeAfter:
    """Evaluate the run's starting model ("before") and its trained model ("after") on ``dataset``.

    ``split`` only labels the payloads; pass the images to evaluate. ``wise_alpha`` (0-1) scores
    the WiSE-FT interpolation instead of the trained model; ``"val"`` (``config.WISE_ON_VALIDATION``, needs
    ``source``) chooses that alpha on the run's validation part of ``source`` first (``choose_alpha``).
    Linear-probe runs score their trained class head, so the dataset must have the classes the run
    was trained on.

    ``source``: the whole dataset ``dataset`` was taken from. With it, class data also gets the
    clinical metrics of the trained model, fitted on the run's validation part of ``source``, and
    the paired comparison; without a WiSE alpha, the fitted temperature and operating point are
    stored in the run folder. ``operating_point``: a rule as ``EvalConfig.operating_point`` spells
    it; None applies the run's stored operating point, else chooses by Youden's J.
    """
    run_dir = Path(run_dir)
    checkpoint = checkpoint_folder(run_dir, "best").name.removesuffix(".old")
    start_spec = run_start_model_spec(run_dir)
    after_label = f"{run_dir} ({checkpoint}{_corrections_note(run_dir)})"
    choice = None
    if wise_alpha == WISE_ON_VALIDATION:
        if source is None:
            raise ConfigError("Choosing the WiSE-FT alpha on validation needs the whole dataset the images came from.")
        validation = _wise_validation_part(run_dir, EvaluationPart(dataset, split, split), source)
        models = WiseInterpolator(run_dir, device=device)  # loaded once: the choice and the scoring share it
        choice = choose_alpha(run_dir, validation.dataset, validation.description, models=models, cache=cache,
                              batch_size=batch_size, callback=callback, should_stop=should_stop)
        if choice is None:
            return BeforeAfter(kind="", split=split, before={}, after={}, before_label=start_spec,
                               after_label=after_label, cancelled=True)
        alpha = choice.alpha
    else:
        alpha = check_alpha(wise_alpha) if wise_alpha is not None else None
        models = WiseInterpolator(run_dir, device=device)
    prompts = run_prompt_set(run_dir)
    kind = models.evaluation_kind_of(dataset)
    if alpha is not None:
        how = f" (chosen on {choice.n} validation images)" if choice is not None else ""
        after_label = f"WiSE-FT alpha {alpha:g}{how} of {after_label}"

    scored = paired = point_from = saved = None
    if source is not None and kind == ZEROSHOT:
        store = EmbeddingStore(cache)
        scoring = dict(batch_size=batch_size, callback=callback, should_stop=should_stop)
        before = score_dataset(store, models.start, dataset, prompts, with_logits=True, **scoring)
        after = None
        if not before.cancelled:
            # A stored point belongs to the run's own weights, not to a WiSE interpolation of them.
            stored = run_operating_point(run_dir) if alpha is None and operating_point is None else None
            if stored is not None and stored.positive_class not in dataset.class_names:
                stored = None
            scored = score_clinical(
                store, models.model_at(1.0 if alpha is None else alpha), source, prompts,
                read_run_config(run_dir).data, EvaluationPart(dataset, split, split), coverage=coverage,
                operating_point=stored or operating_point or "youden", **scoring,
            )
            after = scored.result
            if scored.clinical is not None and scored.clinical.operating_point is not None:
                point_from = STORED_POINT if stored is not None else CHOSEN_POINT
            if alpha is None and save_run_calibration(run_dir, scored):
                saved = run_dir / CALIBRATION_FILE
            paired = _paired(before, after)
    else:
        common = dict(kind=kind, ks=ks, cache=cache, batch_size=batch_size, callback=callback)
        before = evaluate_model(models.start, dataset, prompts, should_stop=should_stop, **common)
        after = None
        if not before.cancelled:
            model = models.model_at(1.0 if alpha is None else alpha)
            after = evaluate_model(model, dataset, prompts, should_stop=should_stop, **common)

    def payload(result, model_label: str, extra: dict) -> dict:
        out = result.to_dict() if result is not None else {}
        return {**out, "split": split, "model": model_label, **extra}

    after_payload = payload(scored if scored is not None else after, str(run_dir),
                            {"checkpoint": checkpoint, "wise_alpha": alpha})
    if choice is not None:
        after_payload["wise_choice"] = choice.to_dict()
    if point_from is not None:
        after_payload["operating_point"]["from"] = point_from

    return BeforeAfter(
        kind=kind,
        split=split,
        before=payload(before, start_spec, {}),
        after=after_payload,
        before_label=start_spec,
        after_label=after_label,
        before_summary=summary_metrics(before),
        after_summary=summary_metrics(after) if after is not None else {},
        cancelled=before.cancelled or after is None or after.cancelled,
        clinical=scored,
        paired=paired,
        operating_point_from=point_from,
        calibration_saved=saved,
        wise_choice=choice,
    )


def choose_wise_alpha(
    run_dir: str | os.PathLike, report: EvaluationPart, source: Dataset, **sweep
) -> WiseChoice | None:
    """The run's WiSE-FT alpha chosen on its validation part of ``source`` (as the run split it), never on
    the ``report`` images; None when cancelled. No validation images apart from the report's: a ConfigError.
    ``sweep``: ``choose_alpha``'s keyword arguments (cache, batch_size, device, callback, should_stop)."""
    part = _wise_validation_part(run_dir, report, source)
    return choose_alpha(run_dir, part.dataset, part.description, **sweep)


def _wise_validation_part(run_dir: str | os.PathLike, report: EvaluationPart, source: Dataset) -> EvaluationPart:
    """The run's validation part of ``source`` to choose the WiSE-FT alpha on; ConfigError when there is none
    apart from the ``report`` images."""
    part, reason = validation_part(source, read_run_config(run_dir).data, report)
    if part is None:
        raise ConfigError(f"The WiSE-FT alpha can't be chosen on validation: {reason}.")
    return part


def _paired(before: ZeroShotResult, after: ZeroShotResult) -> PairedComparison | None:
    """Before (A) against after (B) on the images both scored; None when cancelled."""
    if before.cancelled or after.cancelled or before.labels is None or after.labels is None:
        return None
    if len(before.labels) != len(after.labels):
        return None
    # Uncalibrated probabilities for both: accuracy does not depend on them, and the AUCs compare
    # the two models' own scores rather than one fitted temperature against none.
    return compare_paired(
        before.labels, softmax(before.logits), softmax(after.logits), before.class_names, names=("before", "after")
    )


__all__ = ["BeforeAfter", "choose_wise_alpha", "compare_run"]
