"""Before/after: a run's fine-tuned model against the model it started from, on the same images.

Both models are scored with the run's own prompts, so the comparison is like with like; the
"after" side may be a WiSE-FT interpolation instead of the raw fine-tuned weights. Each side is
a JSON payload shaped like ``clipstudio zeroshot --json`` (class data) or ``clipstudio retrieve
--json`` (image-caption pairs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE, RECALL_KS
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.evaluation.evaluate import evaluate_model, summary_metrics
from clipstudio.engine.evaluation.wise import WiseInterpolator, check_alpha
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import checkpoint_folder, run_start_model_spec


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

    def to_dict(self) -> dict:
        return {"before": self.before, "after": self.after}


def compare_run(
    run_dir: str | os.PathLike,
    dataset: Dataset,
    *,
    split: str = "all",
    wise_alpha: float | None = None,
    ks: Sequence[int] = RECALL_KS,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "auto",
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> BeforeAfter:
    """Evaluate the run's starting model ("before") and its trained model ("after") on ``dataset``.

    ``split`` only labels the payloads; pass the images to evaluate. ``wise_alpha`` (0-1) scores
    the WiSE-FT interpolation instead of the trained model. Linear-probe runs score their trained
    class head, so the dataset must have the classes the run was trained on.
    """
    run_dir = Path(run_dir)
    alpha = check_alpha(wise_alpha) if wise_alpha is not None else None
    prompts = run_prompt_set(run_dir)
    models = WiseInterpolator(run_dir, device=device)
    kind = models.evaluation_kind_of(dataset)
    checkpoint = checkpoint_folder(run_dir, "best").name.removesuffix(".old")
    start_spec = run_start_model_spec(run_dir)
    after_label = f"{run_dir} ({checkpoint})"
    if alpha is not None:
        after_label = f"WiSE-FT alpha {alpha:g} of {after_label}"

    common = dict(kind=kind, ks=ks, cache=cache, batch_size=batch_size, callback=callback)
    before = evaluate_model(models.start, dataset, prompts, should_stop=should_stop, **common)
    after = None
    if not before.cancelled:
        model = models.model_at(1.0 if alpha is None else alpha)
        after = evaluate_model(model, dataset, prompts, should_stop=should_stop, **common)

    def payload(result, model_label: str, extra: dict) -> dict:
        out = result.to_dict() if result is not None else {}
        return {**out, "split": split, "model": model_label, **extra}

    return BeforeAfter(
        kind=kind,
        split=split,
        before=payload(before, start_spec, {}),
        after=payload(after, str(run_dir), {"checkpoint": checkpoint, "wise_alpha": alpha}),
        before_label=start_spec,
        after_label=after_label,
        before_summary=summary_metrics(before),
        after_summary=summary_metrics(after) if after is not None else {},
        cancelled=before.cancelled or after is None or after.cancelled,
    )


__all__ = ["BeforeAfter", "compare_run"]
