"""Evaluation: zero-shot classification and image-text retrieval, from a model or from embeddings.

The ``*_from_embeddings`` functions hold the maths and take plain arrays; ``evaluate_*`` encode a
dataset (through the embedding cache) and call them. Results are JSON-ready via ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.data.dataset import Dataset, Problem
from clipstudio.engine.embeddings import (
    EmbeddingCache,
    encode_image_files,
    encode_texts,
    l2_normalise,
)
from clipstudio.engine.errors import DataError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import PromptSet, class_text_embeddings

# Search lives in its own module; re-exported because callers look for it beside evaluation.
from clipstudio.engine.evaluation.search import SearchHit, search_image, search_text

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

__all__ = [
    "RetrievalResult",
    "SearchHit",
    "ZeroShotResult",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "retrieval_from_embeddings",
    "search_image",
    "search_text",
    "zero_shot_from_embeddings",
]

_CHUNK_CELLS = 2_000_000  # array cells (resample indices, similarities) held in memory at once


@dataclass
class ZeroShotResult:
    """Zero-shot classification metrics. Metrics are ``None`` when no image was evaluated."""

    class_names: list[str]
    n: int
    accuracy: float | None
    balanced_accuracy: float | None  # mean recall over the classes that have images
    top5_accuracy: float | None  # only with 6 or more classes
    per_class: dict[str, dict[str, float | int]]  # name -> precision, recall, f1, support
    confusion_matrix: list[list[int]]  # rows = true class, columns = predicted
    ci95: dict[str, list[float]]  # "accuracy"/"balanced_accuracy" -> [lo, hi] (percentile bootstrap)
    predictions: list[dict] = field(default_factory=list)  # {path, true, pred, topk: [[class, prob]]}
    problems: list[Problem] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self, include_predictions: bool = False) -> dict:
        out: dict = {
            "n": self.n,
            "classes": list(self.class_names),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
        }
        if len(self.class_names) >= 6:
            out["top5_accuracy"] = self.top5_accuracy
        out.update(
            per_class={name: dict(m) for name, m in self.per_class.items()},
            confusion_matrix=[list(row) for row in self.confusion_matrix],
            ci95={k: list(v) for k, v in self.ci95.items()},
            problems=[p.to_dict() for p in self.problems],
            cancelled=self.cancelled,
        )
        if include_predictions:
            out["predictions"] = [dict(p) for p in self.predictions]
        return out


def zero_shot_from_embeddings(
    image_emb: np.ndarray,
    labels: np.ndarray,
    text_emb: np.ndarray,
    class_names: list[str],
    *,
    logit_scale: float,
    paths: list | None = None,
    top_k: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    with_predictions: bool = True,
) -> ZeroShotResult:
    """Classify each image as its most similar class text and score the predictions.

    ``image_emb`` (N, D), need not be unit length (float32 is read in place, never copied);
    ``labels`` (N,) class indices; ``text_emb`` (C, D) one row per class. ``top_k`` sets how many
    classes each prediction lists; ``n_bootstrap=0`` skips the CIs; ``with_predictions=False`` skips
    the per-image list and its softmax (most of the time of a 10k-image re-score without CIs).
    """
    text_emb = l2_normalise(text_emb)
    image_emb = np.asarray(image_emb, dtype=np.float32)
    if not image_emb.size:
        image_emb = image_emb.reshape(0, text_emb.shape[1])
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n, n_classes = len(labels), len(class_names)
    if image_emb.shape[0] != n:
        raise ValueError(f"{image_emb.shape[0]} image embeddings but {n} labels")
    if text_emb.shape[0] != n_classes:
        raise ValueError(f"{text_emb.shape[0]} class embeddings but {n_classes} class names")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    if paths is not None and len(paths) != n:
        raise ValueError(f"{len(paths)} paths but {n} labels")

    # The gallery (10k x 1280 when re-scoring) is neither copied nor normalised: an image's length
    # scales its whole row of similarities, which moves no argmax and no top 5, so only the
    # probabilities need unit images, and dividing the (N, C) logits by the lengths does that.
    # The product stays float32: float64 changes no ranking that matters and would copy the gallery.
    sims = image_emb @ text_emb.T
    pred = np.argmax(sims, axis=1) if n else labels
    matrix = _confusion_matrix(labels, pred, n_classes)
    precision, recall, f1, support = _per_class_metrics(matrix)
    per_class = {
        name: {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
        }
        for c, name in enumerate(class_names)
    }
    top5 = None
    if n and n_classes >= 6:
        top5_idx = np.argpartition(-sims, 4, axis=1)[:, :5]
        top5 = float(np.mean(np.any(top5_idx == labels[:, None], axis=1)))

    ci95: dict[str, list[float]] = {}
    if n and n_bootstrap > 0:
        accs, baccs = _bootstrap(labels, pred, n_classes, n_bootstrap, seed)
        ci95 = {
            "accuracy": [float(v) for v in np.percentile(accs, [2.5, 97.5])],
            "balanced_accuracy": [float(v) for v in np.percentile(baccs, [2.5, 97.5])],
        }

    predictions = []
    if n and with_predictions:
        lengths = np.sqrt(np.einsum("ij,ij->i", image_emb, image_emb)).astype(np.float64)
        probs = _softmax(float(logit_scale) * sims.astype(np.float64) / np.maximum(lengths, 1e-12)[:, None])
        order = np.argsort(-probs, axis=1, kind="stable")[:, : max(1, min(top_k, n_classes))]
        # Plain Python lists first: indexing numpy arrays element by element costs more than the maths.
        top_probs = np.take_along_axis(probs, order, axis=1).tolist()
        names = list(class_names)
        for i, (true, guess, classes, ps) in enumerate(
            zip(labels.tolist(), pred.tolist(), order.tolist(), top_probs, strict=True)
        ):
            predictions.append(
                {
                    "path": None if paths is None else str(paths[i]),
                    "true": names[true],
                    "pred": names[guess],
                    "topk": [[names[c], p] for c, p in zip(classes, ps, strict=True)],
                }
            )

    return ZeroShotResult(
        class_names=list(class_names),
        n=n,
        accuracy=float(np.trace(matrix) / n) if n else None,
        balanced_accuracy=_balanced_accuracy(recall, support) if n else None,
        top5_accuracy=top5,
        per_class=per_class,
        confusion_matrix=matrix.tolist(),
        ci95=ci95,
        predictions=predictions,
    )


def _balanced_accuracy(recall: np.ndarray, support: np.ndarray) -> float:
    """Mean recall over the classes present; a class with no images can't lower or raise it."""
    return float(np.mean(np.asarray(recall)[np.asarray(support) > 0]))


def _confusion_matrix(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted (sklearn's ``confusion_matrix``)."""
    cells = np.bincount(labels * n_classes + pred, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes)


def _per_class_metrics(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix; 0 where undefined.

    The same numbers as sklearn's ``precision_recall_fscore_support(..., zero_division=0)``, without
    its input checks (a few ms per call, most of the re-scoring maths).
    """
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * tp, support + predicted)  # sklearn's form: 2 tp / (2 tp + fp + fn)
    return precision, recall, f1, support


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _bootstrap(
    labels: np.ndarray, pred: np.ndarray, n_classes: int, n_bootstrap: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and balanced accuracy of ``n_bootstrap`` resamples of the images (with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    # Each image as one (class, right or wrong) cell: a resample needs only the counts per cell.
    cell_of = (2 * labels + (pred == labels)).astype(np.int32)
    per_chunk = max(1, _CHUNK_CELLS // n)
    accs, baccs = [], []
    for start in range(0, n_bootstrap, per_chunk):
        b = min(per_chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        # One bincount over (resample, class, right) cells counts every resample at once.
        cell = (np.arange(b)[:, None] * (2 * n_classes) + np.take(cell_of, idx)).ravel()
        counts = np.bincount(cell, minlength=b * 2 * n_classes).reshape(b, n_classes, 2)
        hits = counts[:, :, 1]
        support = counts.sum(axis=2)
        accs.append(hits.sum(axis=1) / n)
        recall = np.divide(hits, support, out=np.zeros(hits.shape), where=support > 0)
        baccs.append(recall.sum(axis=1) / (support > 0).sum(axis=1))
    return np.concatenate(accs), np.concatenate(baccs)


def evaluate_zero_shot(
    model: ImageTextModel,
    dataset: Dataset,
    prompts: PromptSet,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> ZeroShotResult:
    """Zero-shot classify every image of a labelled dataset with the prompt ensemble of each class."""
    where = dataset.source or dataset.root
    if len(dataset.class_names) < 2:
        raise DataError(
            f"{where}: zero-shot evaluation needs at least 2 classes; found {len(dataset.class_names)}."
        )
    unlabelled = sum(1 for s in dataset.samples if s.label is None)
    if unlabelled:
        raise DataError(
            f"{where}: zero-shot evaluation needs a class for every image; {unlabelled} have none."
        )
    if not len(dataset):
        raise DataError(f"{where}: no images to evaluate.")

    # Texts first: a bad prompt should fail before minutes of image encoding, not after.
    text_emb = _class_embeddings(model, dataset.class_names, prompts)
    encoded = encode_image_files(
        model, dataset.paths, cache=cache, batch_size=batch_size, callback=callback, should_stop=should_stop
    )
    _require_some_images(encoded, dataset)
    samples = [dataset.samples[i] for i in encoded.indices]
    result = zero_shot_from_embeddings(
        encoded.embeddings,
        np.array([s.label for s in samples], dtype=np.int64),
        text_emb,
        dataset.class_names,
        logit_scale=model.logit_scale,
        paths=[str(s.path) for s in samples],
    )
    result.problems = list(encoded.problems)
    result.cancelled = encoded.cancelled
    return result


def _class_embeddings(model: ImageTextModel, class_names: list[str], prompts: PromptSet) -> np.ndarray:
    """(C, D) class rows: a model's own trained class head (linear-probe runs), else the prompt ensemble."""
    own = getattr(model, "class_embeddings", None)
    if callable(own):
        rows = own(list(class_names))
        if rows is not None:  # None: the head lacks one of these classes
            return np.asarray(rows, dtype=np.float32)
    return class_text_embeddings(model, class_names, prompts)


def _require_some_images(encoded, dataset: Dataset) -> None:
    if encoded.indices or encoded.cancelled:
        return
    first = encoded.problems[0] if encoded.problems else None
    detail = f" (first: {first.path}: {first.reason})" if first else ""
    raise DataError(
        f"{dataset.source or dataset.root}: none of the {len(dataset)} images could be read{detail}."
    )


@dataclass
class RetrievalResult:
    """Image->text and text->image retrieval. Recall is a fraction in [0, 1]; ranks are 1-based."""

    n: int  # images searched
    n_texts: int  # captions searched
    image_to_text: dict[str, float | None]  # "R@1", "R@5", ...
    text_to_image: dict[str, float | None]
    mean_rank: dict[str, float | None]  # "image_to_text" / "text_to_image"
    median_rank: dict[str, float | None]
    problems: list[Problem] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "n_texts": self.n_texts,
            "image_to_text": dict(self.image_to_text),
            "text_to_image": dict(self.text_to_image),
            "mean_rank": dict(self.mean_rank),
            "median_rank": dict(self.median_rank),
            "problems": [p.to_dict() for p in self.problems],
            "cancelled": self.cancelled,
        }


def retrieval_from_embeddings(
    image_emb: np.ndarray, text_emb: np.ndarray, text_owner: np.ndarray, *, ks=(1, 5, 10)
) -> RetrievalResult:
    """Recall@K and ranks for both directions; ``text_owner[j]`` is the image caption ``j`` describes.

    Image->text: an image's rank is that of its best-ranked own caption (images without captions
    are not queried but stay in the gallery). Ties count against the query, so a model that
    scores everything alike ranks last rather than first.
    """
    image_emb = l2_normalise(image_emb)
    text_emb = l2_normalise(text_emb)
    owner = np.asarray(text_owner, dtype=np.int64).reshape(-1)
    n, m = len(image_emb), len(text_emb)
    if len(owner) != m:
        raise ValueError(f"{m} text embeddings but {len(owner)} owners")
    if m and (owner.min() < 0 or owner.max() >= n):
        raise ValueError(f"text owners must lie in [0, {n})")

    i2t_rank = np.zeros(n, dtype=np.int64)
    t2i_rank = np.ones(m, dtype=np.int64)
    own_sim = np.empty(m, dtype=np.float32)
    has_caption = np.bincount(owner, minlength=n) > 0 if m else np.zeros(n, bool)
    rows_per_chunk = max(1, _CHUNK_CELLS // max(m, 1))
    chunks = [(a, min(a + rows_per_chunk, n)) for a in range(0, n, rows_per_chunk)]

    # Pass 1: each caption's similarity to its own image, and image->text ranks.
    for a, b in chunks:
        sims = image_emb[a:b] @ text_emb.T
        mine = (owner >= a) & (owner < b)
        cols, rows = np.nonzero(mine)[0], owner[mine] - a
        own_sim[cols] = sims[rows, cols]
        best_own = np.full(b - a, -np.inf, dtype=np.float32)
        np.maximum.at(best_own, rows, sims[rows, cols])
        sims[rows, cols] = -np.inf  # own captions don't compete with each other
        i2t_rank[a:b] = 1 + np.sum(sims >= best_own[:, None], axis=1)
    # Pass 2: text->image ranks against every other image.
    for a, b in chunks:
        sims = image_emb[a:b] @ text_emb.T
        mine = (owner >= a) & (owner < b)
        cols = np.nonzero(mine)[0]
        sims[owner[mine] - a, cols] = -np.inf
        t2i_rank += np.sum(sims >= own_sim[None, :], axis=0)

    i2t = i2t_rank[has_caption]
    return RetrievalResult(
        n=n,
        n_texts=m,
        image_to_text={f"R@{k}": _recall_at(i2t, k) for k in ks},
        text_to_image={f"R@{k}": _recall_at(t2i_rank, k) for k in ks},
        mean_rank={"image_to_text": _mean(i2t), "text_to_image": _mean(t2i_rank)},
        median_rank={"image_to_text": _median(i2t), "text_to_image": _median(t2i_rank)},
    )


def _recall_at(ranks: np.ndarray, k: int) -> float | None:
    return float(np.mean(ranks <= k)) if ranks.size else None


def _mean(ranks: np.ndarray) -> float | None:
    return float(np.mean(ranks)) if ranks.size else None


def _median(ranks: np.ndarray) -> float | None:
    return float(np.median(ranks)) if ranks.size else None


def evaluate_retrieval(
    model: ImageTextModel,
    dataset: Dataset,
    *,
    ks=(1, 5, 10),
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> RetrievalResult:
    """Retrieve captions from images and images from captions over the whole dataset."""
    if not dataset.has_captions:
        raise DataError(f"{dataset.source or dataset.root}: retrieval needs captions; this dataset has none.")
    encoded = encode_image_files(
        model, dataset.paths, cache=cache, batch_size=batch_size, callback=callback, should_stop=should_stop
    )
    _require_some_images(encoded, dataset)
    texts, owners = [], []
    for row, i in enumerate(encoded.indices):
        for caption in dataset.samples[i].captions:
            texts.append(caption)
            owners.append(row)
    if encoded.cancelled:  # encoding the captions is more work the user just asked to stop
        texts, owners = [], []
    text_emb = encode_texts(model, texts, callback=callback)
    result = retrieval_from_embeddings(encoded.embeddings, text_emb, np.array(owners, dtype=np.int64), ks=ks)
    result.problems = list(encoded.problems)
    result.cancelled = encoded.cancelled
    return result
