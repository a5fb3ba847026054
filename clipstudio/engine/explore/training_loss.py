"""Per-image training loss of a finished run: the hardest training images, for the explorer's list.

Runs don't record a loss per image (the trainer only logs batch means), so the run's final model
(``checkpoint_best``, else ``checkpoint_latest``) scores its own training images afterwards, the
images ``splits.json`` lists, classified as ``clipstudio eval`` classifies: with the run's trained
head (linear probe, Tip-Adapter) or else its prompts. The loss is the cross-entropy of the given
label, the quantity every classification method trains on. Images the run's model embeds with a
frozen encoder come from the embedding cache; a fine-tuned encoder embeds them afresh.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.zero_shot import class_weights, own_classifier
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import SPLITS_FILE, read_run_info, require_run_folder


@dataclass(frozen=True)
class TrainingLosses:
    """The loss of each training image of a run that ``dataset`` still holds."""

    indices: list[int]  # dataset.samples positions
    losses: np.ndarray  # (N,) float32 cross-entropy of the given label, high = hard
    predicted: np.ndarray  # (N,) int64 class the run's model predicts
    method: str  # the run's training method

    def hardest(self) -> np.ndarray:
        """Positions into ``indices``, highest loss first."""
        return np.argsort(-self.losses, kind="stable")


def run_training_images(run_dir: str | os.PathLike) -> list[str]:
    """The training image paths a run used (``splits.json``); ConfigError when the run has none."""
    run = require_run_folder(run_dir)
    try:
        listed = json.loads((run / SPLITS_FILE).read_text(encoding="utf-8")).get("train") or []
    except (OSError, ValueError, AttributeError):
        raise ConfigError(f"{run}: the list of training images ({SPLITS_FILE}) is missing or damaged.") from None
    if not listed:
        raise ConfigError(f"{run}: the run lists no training images.")
    return [str(p) for p in listed]


def training_losses(
    run_dir: str | os.PathLike,
    dataset: Dataset,
    store: EmbeddingStore,
    *,
    device: str = "auto",
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> TrainingLosses | None:
    """Each training image's loss under the run's final model (None when stopped).

    ``dataset`` gives the labels (with any corrections applied); its images the run trained on are scored.
    """
    from clipstudio.engine.models import load_run_model  # deferred: torch and transformers

    if not dataset.is_classification:
        raise DataError("Per-image training loss needs a class for every image.")
    wanted = set(run_training_images(run_dir))
    indices = [i for i, s in enumerate(dataset.samples) if str(s.path) in wanted]
    if not indices:
        raise DataError(
            f"None of the training images of the run {Path(run_dir).name} are in this dataset; "
            "open the dataset the run was trained on."
        )
    model = load_run_model(run_dir, device=device)
    head = own_classifier(model, dataset.class_names)
    if head is None:
        head = class_weights(model, dataset.class_names, run_prompt_set(run_dir), text_cache=store.text_cache)
    encoded = store.image_embeddings(
        model, [dataset.samples[i].path for i in indices], callback=callback, should_stop=should_stop
    )
    if encoded.cancelled:
        return None
    kept = [indices[i] for i in encoded.indices]
    logits = head.logits(encoded.embeddings)
    labels = np.array([dataset.samples[i].label for i in kept], dtype=np.int64)
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    losses = log_norm - logits[np.arange(len(kept)), labels]
    return TrainingLosses(kept, losses.astype(np.float32), logits.argmax(axis=1).astype(np.int64),
                          str(read_run_info(run_dir).get("method", "")))
