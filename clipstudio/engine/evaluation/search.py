"""Search a dataset by text or by example image, ranked by cosine similarity in the model's space.

The gallery's embeddings come from an ``EmbeddingStore``, so the Retrieval screen's second query
(and the CLI's one query) encodes only the query itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.config import EVAL_BATCH_SIZE
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.embeddings import EncodedImages, encode_image_files, encode_texts, l2_normalise
from clipstudio.engine.errors import ConfigError, DataError, ImageError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel


@dataclass
class SearchHit:
    """One result: the image, its cosine similarity to the query, and the captions shown with it.

    For caption hits ``captions`` holds just the matching caption and ``path`` the image it describes.
    """

    path: str
    score: float
    captions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "score": self.score, "captions": list(self.captions)}


def search_text(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    query: str,
    *,
    top: int = 10,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> list[SearchHit]:
    """The ``top`` images most similar to a text query, best first (of those encoded, if cancelled)."""
    if not query.strip():
        raise ConfigError("The search text is empty.")
    gallery = _gallery(store, model, dataset, batch_size, callback, should_stop)
    query_emb = encode_texts(model, [query])[0]
    return _image_hits(dataset, gallery, query_emb, top)


def search_image(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    image_path: str | os.PathLike,
    *,
    top: int = 10,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """The ``top`` images and the ``top`` captions most similar to an example image, best first.

    An image of the dataset used as the query finds itself first, with a score of about 1 (its
    vector is the gallery's own, not encoded again).
    """
    own = _dataset_index(dataset, image_path)
    query_emb = None
    if own is None:  # encoded first: an unreadable query fails before the gallery is encoded
        encoded = encode_image_files(model, [Path(image_path)], cache=store.disk_cache)
        if encoded.problems:
            raise ImageError(f"{image_path}: {encoded.problems[0].reason}")
        query_emb = encoded.embeddings[0]
    gallery = _gallery(store, model, dataset, batch_size, callback, should_stop)
    if query_emb is None:
        if own not in gallery.indices:
            if gallery.cancelled:
                return [], []
            reason = next((p.reason for p in gallery.problems if p.path == str(dataset.samples[own].path)), "")
            raise ImageError(f"{image_path}: {reason or 'the image could not be read.'}")
        query_emb = gallery.embeddings[gallery.indices.index(own)]
    image_hits = _image_hits(dataset, gallery, query_emb, top)

    texts, owners = [], []
    for i in gallery.indices:
        for caption in dataset.samples[i].captions:
            texts.append(caption)
            owners.append(i)
    caption_hits = []
    if texts and not gallery.cancelled:  # encoding the captions is more work the user asked to stop
        rows, scores = rank(store.text_embeddings(model, texts), query_emb, top)
        caption_hits = [
            SearchHit(str(dataset.samples[owners[j]].path), float(scores[j]), [texts[j]]) for j in rows
        ]
    return image_hits, caption_hits


def rank(gallery: np.ndarray, query: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``top`` gallery vectors most similar to ``query`` (best first; ties keep order),
    and every row's cosine similarity."""
    scores = l2_normalise(gallery) @ l2_normalise(np.asarray(query)[None, :])[0]
    return top_indices(scores, top), scores


def top_indices(scores: np.ndarray, top: int) -> np.ndarray:
    """Indices of the ``top`` highest scores, best first; ties keep dataset order.

    Same result as a stable full sort, but O(N) for N >> top: ``argpartition`` finds the cut-off
    score, and only the scores at or above it are sorted (a 1M-image gallery: ~5 ms, not ~100 ms).
    """
    scores = np.asarray(scores).reshape(-1)
    top = max(0, min(int(top), len(scores)))
    if top == 0:
        return np.zeros(0, dtype=np.int64)
    if top * 8 >= len(scores):
        return np.argsort(-scores, kind="stable")[:top]
    cutoff = scores[np.argpartition(-scores, top - 1)[top - 1]]
    if not np.isfinite(cutoff):  # NaNs or infinities at the cut: the plain sort defines the order
        return np.argsort(-scores, kind="stable")[:top]
    candidates = np.flatnonzero(scores >= cutoff)  # ascending: the stable sort keeps dataset order on ties
    return candidates[np.argsort(-scores[candidates], kind="stable")[:top]]


def _gallery(store, model, dataset, batch_size, callback, should_stop) -> EncodedImages:
    if not len(dataset):
        raise DataError(f"{dataset.source or dataset.root}: no images to search.")
    return store.image_embeddings(
        model, dataset.paths, batch_size=batch_size, callback=callback, should_stop=should_stop
    )


def _dataset_index(dataset: Dataset, image_path: str | os.PathLike) -> int | None:
    """The sample index of ``image_path`` in the dataset (as given, absolute or resolved), or None."""
    candidates = {str(image_path), os.path.abspath(image_path)}
    try:
        candidates.add(str(Path(image_path).resolve()))
    except OSError:
        pass
    return next((i for i, s in enumerate(dataset.samples) if str(s.path) in candidates), None)


def _image_hits(dataset: Dataset, gallery: EncodedImages, query_emb: np.ndarray, top: int) -> list[SearchHit]:
    rows, scores = rank(gallery.embeddings, query_emb, top)
    hits = []
    for row in rows:
        sample = dataset.samples[gallery.indices[row]]
        hits.append(SearchHit(str(sample.path), float(scores[row]), list(sample.captions)))
    return hits


__all__ = ["SearchHit", "rank", "search_image", "search_text", "top_indices"]
