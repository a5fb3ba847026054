"""Image-text retrieval: Recall@K and ranks in both directions, from embeddings or from a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE, RECALL_KS
from clipstudio.engine.data.dataset import Dataset, Problem
from clipstudio.engine.embeddings import encode_texts, l2_normalise
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore, require_some_images
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

__all__ = ["RetrievalResult", "evaluate_retrieval", "retrieval_from_embeddings"]

_CHUNK_CELLS = 2_000_000  # similarities held in memory at once


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
    image_emb: np.ndarray, text_emb: np.ndarray, text_owner: np.ndarray, *, ks=RECALL_KS
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
    ks=RECALL_KS,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
    store: EmbeddingStore | None = None,
) -> RetrievalResult:
    """Retrieve captions from images and images from captions over the whole dataset.

    ``store``: one that may hold the images' embeddings already (default: a new one over ``cache``).
    """
    if not dataset.has_captions:
        raise DataError(f"{dataset.source or dataset.root}: retrieval needs captions; this dataset has none.")
    encoded = (store or EmbeddingStore(cache)).image_embeddings(
        model, dataset.paths, batch_size=batch_size, callback=callback, should_stop=should_stop
    )
    require_some_images(encoded, dataset)
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
