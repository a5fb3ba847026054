"""Zero-shot classification: class embeddings (a trained head or a prompt ensemble) and scoring.

``score_embeddings`` holds the maths and takes plain arrays (``score_logits``: the logits of a
classifier that is not one row per class, a Tip-Adapter cache). ``score_dataset`` scores a dataset
(part) with the image embeddings of an ``EmbeddingStore``: the CLI, the Prompts screen, the Results
screen and ``compare_prompt_sets`` all score through it, so they report the same numbers. Results
are JSON-ready via ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from clipstudio.engine.cache.vectors import EmbeddingCache, TextEmbeddingCache
from clipstudio.engine.class_weights import ClassWeights
from clipstudio.engine.config import EVAL_BATCH_SIZE
from clipstudio.engine.data.dataset import Dataset, Problem
from clipstudio.engine.embeddings import l2_normalise, normalised_text_embeddings
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore, require_some_images
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.prompts import PromptSet

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

__all__ = [
    "ClassScorer",
    "ZeroShotResult",
    "class_weights",
    "class_text_embeddings",
    "compare_prompt_sets",
    "evaluate_zero_shot",
    "own_classifier",
    "score_dataset",
    "score_embeddings",
    "score_logits",
    "trained_head",
]

_CHUNK_CELLS = 2_000_000  # array cells (resample indices) held in memory at once


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
    # Only when asked for (``with_logits``), for the clinical metrics; never in to_dict.
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)  # (N,) class indices
    logits: np.ndarray | None = field(default=None, repr=False, compare=False)  # (N, C) float32

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


def score_embeddings(
    image_emb: np.ndarray,
    labels: np.ndarray,
    text_emb: np.ndarray,
    class_names: list[str],
    *,
    logit_scale: float,
    class_bias: np.ndarray | None = None,
    paths: list | None = None,
    top_k: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    with_predictions: bool = True,
    with_logits: bool = False,
) -> ZeroShotResult:
    """Classify each image as its most similar class text and score the predictions.

    ``image_emb`` (N, D), need not be unit length (float32 is read in place, never copied);
    ``labels`` (N,) class indices; ``text_emb`` (C, D) one row per class. With ``class_bias`` (C,)
    the head is affine (a linear probe's): its rows are used as they are, not normalised, and the
    logits are ``logit_scale * unit(image) @ rows.T + bias``. ``top_k`` sets how many
    classes each prediction lists; ``n_bootstrap=0`` skips the CIs; ``with_predictions=False`` skips
    the per-image list and its softmax (most of the time of a 10k-image re-score without CIs).
    ``with_logits`` keeps ``labels`` and the (N, C) float32 logits (logit scale x cosine similarity,
    the numbers the probabilities are the softmax of) on the result.
    """
    affine = class_bias is not None
    text_emb = np.asarray(text_emb, dtype=np.float32) if affine else l2_normalise(text_emb)
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
    logits = None
    if n and (affine or with_predictions or with_logits):
        lengths = np.sqrt(np.einsum("ij,ij->i", image_emb, image_emb)).astype(np.float64)
        logits = float(logit_scale) * sims.astype(np.float64) / np.maximum(lengths, 1e-12)[:, None]
        if affine:
            # A bias moves the argmax, so the ranking is that of the logits, not of the raw similarities.
            logits += np.asarray(class_bias, dtype=np.float64).reshape(1, -1)
            sims = logits
    return _score(sims, logits, labels, class_names, paths, top_k, n_bootstrap, seed, with_predictions, with_logits)


def score_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    *,
    paths: list | None = None,
    top_k: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    with_predictions: bool = True,
    with_logits: bool = False,
) -> ZeroShotResult:
    """Score (N, C) class logits of a classifier that is not one row per class (a Tip-Adapter cache).

    The other arguments are ``score_embeddings``'.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, len(class_names))
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n, n_classes = len(labels), len(class_names)
    if logits.shape[0] != n:
        raise ValueError(f"{logits.shape[0]} rows of logits but {n} labels")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    if paths is not None and len(paths) != n:
        raise ValueError(f"{len(paths)} paths but {n} labels")
    return _score(logits, logits, labels, class_names, paths, top_k, n_bootstrap, seed, with_predictions, with_logits)


def _score(
    sims: np.ndarray,
    logits: np.ndarray | None,
    labels: np.ndarray,
    class_names: list[str],
    paths: list | None,
    top_k: int,
    n_bootstrap: int,
    seed: int,
    with_predictions: bool,
    with_logits: bool,
) -> ZeroShotResult:
    """The metrics of predictions ranked by ``sims`` (N, C), probabilities the softmax of ``logits``."""
    n, n_classes = len(labels), len(class_names)
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
        probs = _softmax(logits)
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
        labels=labels.copy() if with_logits else None,
        logits=(logits.astype(np.float32) if n else np.zeros((0, n_classes), np.float32)) if with_logits else None,
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


def class_text_embeddings(
    model: ImageTextModel,
    class_names: list[str],
    prompts: PromptSet,
    *,
    batch_size: int = 256,
    text_cache: TextEmbeddingCache | None = None,
) -> np.ndarray:
    """(C, D) float32: per class, the renormalised mean of its L2-normalised prompt text embeddings.

    ``text_cache``: encode only texts it doesn't hold yet (re-scoring after a prompt edit).
    """
    per_class = [prompts.texts_for(name) for name in class_names]
    flat = [text for texts in per_class for text in texts]
    emb = normalised_text_embeddings(model, flat, cache=text_cache, batch_size=batch_size)
    out = np.zeros((len(class_names), emb.shape[1]), dtype=np.float32)
    start = 0
    for c, texts in enumerate(per_class):
        out[c] = emb[start : start + len(texts)].mean(axis=0)
        start += len(texts)
    return l2_normalise(out)


def trained_head(model: ImageTextModel, class_names: list[str]) -> ClassWeights | None:
    """The model's own trained class head (a linear-probe run) for ``class_names``, or None.

    None also when the head lacks one of ``class_names``: the prompts then describe the classes.
    """
    own = getattr(model, "class_weights", None)  # only linear-probe models carry a head
    return own(list(class_names)) if callable(own) else None


class ClassScorer(Protocol):
    """A trained classifier that is not one row per class (a Tip-Adapter cache)."""

    def logits(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, C) class logits of (N, D) image embeddings of any length."""


def own_classifier(model: ImageTextModel, class_names: list[str]) -> ClassWeights | ClassScorer | None:
    """The model's own trained classifier for ``class_names`` (a linear probe's head, a Tip-Adapter cache), or None.

    None: the model has none, or it lacks one of ``class_names``; the prompts then describe the classes.
    """
    head = trained_head(model, class_names)
    if head is not None:
        return head
    scorer = getattr(model, "class_scorer", None)  # models whose classifier is not one row per class
    return scorer(list(class_names)) if callable(scorer) else None


def class_weights(
    model: ImageTextModel,
    class_names: list[str],
    prompts: PromptSet,
    *,
    text_cache: TextEmbeddingCache | None = None,
) -> ClassWeights:
    """The head to classify with: the model's trained head if it has one, else the prompt ensemble's cosine head."""
    head = trained_head(model, class_names)
    if head is not None:
        return head
    rows = class_text_embeddings(model, class_names, prompts, text_cache=text_cache)
    return ClassWeights(rows, float(model.logit_scale))


def score_dataset(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    prompts: PromptSet,
    *,
    with_predictions: bool = True,
    with_logits: bool = False,
    n_bootstrap: int = 1000,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> ZeroShotResult:
    """Zero-shot classify every image of a labelled dataset (part), its embeddings from ``store``.

    Images the store already holds for this model are not encoded again, nor are prompt texts
    in ``store.text_cache``. When cancelled, the images encoded so far are scored and
    ``cancelled`` is set. ``with_predictions``/``with_logits``/``n_bootstrap`` as in ``score_embeddings``.
    """
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
    head = own_classifier(model, dataset.class_names)
    if head is None:
        head = class_weights(model, dataset.class_names, prompts, text_cache=store.text_cache)
    encoded = store.image_embeddings(
        model, dataset.paths, batch_size=batch_size, callback=callback, should_stop=should_stop
    )
    require_some_images(encoded, dataset)
    samples = [dataset.samples[i] for i in encoded.indices]
    labels = np.array([s.label for s in samples], dtype=np.int64)
    paths = [str(s.path) for s in samples]
    if isinstance(head, ClassWeights):  # one row per class: the fast path, no (N, C) float64 copy
        result = score_embeddings(
            encoded.embeddings,
            labels,
            head.rows,
            dataset.class_names,
            logit_scale=head.scale,
            class_bias=head.bias,
            paths=paths,
            n_bootstrap=n_bootstrap,
            with_predictions=with_predictions,
            with_logits=with_logits,
        )
    else:
        result = score_logits(
            head.logits(encoded.embeddings),
            labels,
            dataset.class_names,
            paths=paths,
            n_bootstrap=n_bootstrap,
            with_predictions=with_predictions,
            with_logits=with_logits,
        )
    result.problems = list(encoded.problems)
    result.cancelled = encoded.cancelled
    return result


def evaluate_zero_shot(
    model: ImageTextModel,
    dataset: Dataset,
    prompts: PromptSet,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> ZeroShotResult:
    """``score_dataset`` with a store of its own: one model, one dataset, encoded once (via ``cache``)."""
    return score_dataset(
        EmbeddingStore(cache), model, dataset, prompts, batch_size=batch_size, callback=callback,
        should_stop=should_stop,
    )


def compare_prompt_sets(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    prompt_sets: list[PromptSet],
    *,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> list[dict]:
    """Zero-shot accuracy of each prompt set on the same images, encoded once; only texts are encoded.

    One row per set: ``name``, ``accuracy``, ``balanced_accuracy`` and ``per_class_recall`` (class
    name -> recall; ``None`` for a class with no images). Stops early (fewer rows) when cancelled.
    """
    rows = []
    for prompt_set in prompt_sets:
        result = score_dataset(
            store, model, dataset, prompt_set, with_predictions=False, n_bootstrap=0, callback=callback,
            should_stop=should_stop,
        )
        if result.cancelled:
            break
        recall = {name: (m["recall"] if m["support"] else None) for name, m in result.per_class.items()}
        rows.append(
            {
                "name": prompt_set.name,
                "accuracy": result.accuracy,
                "balanced_accuracy": result.balanced_accuracy,
                "per_class_recall": recall,
            }
        )
    return rows
