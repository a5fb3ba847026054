"""Search a dataset by text or by example image, ranked by cosine similarity in the model's space."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.embeddings import (
    EmbeddingCache,
    EncodedImages,
    encode_image_files,
    encode_texts,
    l2_normalise,
)
from clipstudio.engine.errors import ConfigError, DataError, ImageError
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
    model: ImageTextModel,
    dataset: Dataset,
    query: str,
    *,
    top: int = 10,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> list[SearchHit]:
    """The ``top`` images most similar to a text query, best first."""
    if not query.strip():
        raise ConfigError("The search text is empty.")
    gallery = _encode_gallery(model, dataset, cache, batch_size, callback, should_stop)
    query_emb = l2_normalise(encode_texts(model, [query]))[0]
    return _image_hits(dataset, gallery, query_emb, top)


def search_image(
    model: ImageTextModel,
    dataset: Dataset,
    image_path: str | os.PathLike,
    *,
    top: int = 10,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """The ``top`` images and the ``top`` captions most similar to an example image, best first.

    An image of the dataset used as the query finds itself first, with a score of about 1.
    """
    query = encode_image_files(model, [Path(image_path)], cache=cache)
    if query.problems:
        raise ImageError(f"{image_path}: {query.problems[0].reason}")
    query_emb = l2_normalise(query.embeddings)[0]
    gallery = _encode_gallery(model, dataset, cache, batch_size, callback, should_stop)
    image_hits = _image_hits(dataset, gallery, query_emb, top)

    texts, owners = [], []
    for i in gallery.indices:
        for caption in dataset.samples[i].captions:
            texts.append(caption)
            owners.append(i)
    caption_hits = []
    if texts and not gallery.cancelled:
        scores = l2_normalise(encode_texts(model, texts)) @ query_emb
        for j in _top(scores, top):
            caption_hits.append(SearchHit(str(dataset.samples[owners[j]].path), float(scores[j]), [texts[j]]))
    return image_hits, caption_hits


def _encode_gallery(model, dataset, cache, batch_size, callback, should_stop) -> EncodedImages:
    if not len(dataset):
        raise DataError(f"{dataset.source or dataset.root}: no images to search.")
    return encode_image_files(
        model, dataset.paths, cache=cache, batch_size=batch_size, callback=callback, should_stop=should_stop
    )


def _image_hits(dataset: Dataset, gallery: EncodedImages, query_emb: np.ndarray, top: int) -> list[SearchHit]:
    scores = l2_normalise(gallery.embeddings) @ query_emb
    hits = []
    for row in _top(scores, top):
        sample = dataset.samples[gallery.indices[row]]
        hits.append(SearchHit(str(sample.path), float(scores[row]), list(sample.captions)))
    return hits


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


_top = top_indices
