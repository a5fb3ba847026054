"""Evaluate one model on a dataset the way its kind calls for: zero-shot for class data, retrieval for pairs.

What before/after comparisons and WiSE-FT sweeps share: the kind of evaluation a dataset gets, the
evaluation itself, and its headline numbers as one flat row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE, RECALL_KS
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.retrieval import RetrievalResult, evaluate_retrieval
from clipstudio.engine.evaluation.zero_shot import ZeroShotResult, evaluate_zero_shot
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import PromptSet

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

ZEROSHOT, RETRIEVAL = "zeroshot", "retrieval"


def evaluation_kind(dataset: Dataset) -> str:
    """``"zeroshot"`` for class data, ``"retrieval"`` for image-caption pairs; DataError for neither."""
    if dataset.is_classification and not dataset.has_captions:
        return ZEROSHOT
    if dataset.has_captions:
        return RETRIEVAL
    raise DataError(
        f"{dataset.source or dataset.root}: evaluation needs class labels (2+ classes) or image captions."
    )


def evaluate_model(
    model: ImageTextModel,
    dataset: Dataset,
    prompts: PromptSet,
    *,
    kind: str,
    ks: Sequence[int] = RECALL_KS,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> ZeroShotResult | RetrievalResult:
    """Zero-shot (``kind="zeroshot"``) or retrieval evaluation of one model: the result object."""
    common = dict(cache=cache, batch_size=batch_size, callback=callback, should_stop=should_stop)
    if kind == ZEROSHOT:
        return evaluate_zero_shot(model, dataset, prompts, **common)
    return evaluate_retrieval(model, dataset, ks=tuple(ks), **common)


def summary_metrics(result: ZeroShotResult | RetrievalResult) -> dict:
    """The headline numbers of a ZeroShotResult or RetrievalResult, flat and JSON-ready."""
    if isinstance(result, ZeroShotResult):
        return {"n": result.n, "accuracy": result.accuracy, "balanced_accuracy": result.balanced_accuracy}
    out: dict = {"n": result.n}
    recalls = []
    for direction, prefix in (("image_to_text", "i2t"), ("text_to_image", "t2i")):
        for key, value in getattr(result, direction).items():
            out[f"{prefix}_{key}"] = value
            if value is not None:
                recalls.append(value)
    out["mean_recall"] = float(np.mean(recalls)) if recalls else None
    return out


__all__ = ["RETRIEVAL", "ZEROSHOT", "evaluate_model", "evaluation_kind", "summary_metrics"]
