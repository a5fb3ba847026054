"""A dataset's embeddings for the explorer, and the whole exploration in one call (what the CLI runs).

The embeddings are the ones every other screen uses: an ``EmbeddingStore`` over the on-disk
embedding cache, keyed by the model's image fingerprint, so a dataset already evaluated or
trained on is explored without encoding an image again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.data.dataset import Dataset, Problem
from clipstudio.engine.embeddings import l2_normalise
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore, require_some_images
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.engine.explore.cache import ExploreCache
from clipstudio.engine.explore.duplicates import (
    DEFAULT_DUPLICATE_THRESHOLD,
    PICTURE_MATCH,
    DuplicateGroup,
    SamePicture,
    find_duplicates,
)
from clipstudio.engine.explore.label_issues import DEFAULT_FOLDS, UNLABELLED, LabelIssues, rank_label_issues
from clipstudio.engine.explore.neighbours import DEFAULT_NEIGHBOURS, NeighbourGraph
from clipstudio.engine.explore.outliers import DEFAULT_OUTLIER_NEIGHBOURS, outlier_scores

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel


@dataclass(frozen=True)
class DatasetEmbeddings:
    """The L2-normalised embeddings of a dataset's readable images, with what each row is."""

    x: np.ndarray  # (N, D) float32
    indices: list[int]  # dataset.samples position of each row
    labels: np.ndarray  # (N,) int64, UNLABELLED (-1) where the image has no class
    splits: list[str]  # per row: the image's split, "" where none
    paths: list[str]
    fingerprint: str  # the model's image fingerprint (the caches' key)
    problems: list[Problem] = field(default_factory=list)  # images that could not be read


def dataset_embeddings(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    *,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> DatasetEmbeddings | None:
    """Every readable image's embedding (from the cache where it has them); None when stopped."""
    encoded = store.image_embeddings(model, dataset.paths, callback=callback, should_stop=should_stop)
    if encoded.cancelled:
        return None
    require_some_images(encoded, dataset)
    samples = [dataset.samples[i] for i in encoded.indices]
    return DatasetEmbeddings(
        x=l2_normalise(encoded.embeddings),
        indices=list(encoded.indices),
        labels=np.array([UNLABELLED if s.label is None else s.label for s in samples], dtype=np.int64),
        splits=[s.split or "" for s in samples],
        paths=[str(s.path) for s in samples],
        fingerprint=model.image_fingerprint(),
        problems=list(encoded.problems),
    )


@dataclass(frozen=True)
class ExploreOptions:
    """What ``explore_dataset`` computes, and with which settings."""

    with_map: bool = True
    folds: int = DEFAULT_FOLDS
    duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD
    picture_match: float | None = PICTURE_MATCH  # None: duplicates by the embeddings alone
    neighbours: int = DEFAULT_NEIGHBOURS
    outlier_neighbours: int = DEFAULT_OUTLIER_NEIGHBOURS
    seed: int = 0


@dataclass(frozen=True)
class Exploration:
    """Everything the explorer shows about one dataset under one model (rows as in ``embeddings``)."""

    embeddings: DatasetEmbeddings
    graph: NeighbourGraph
    xy: np.ndarray | None  # (N, 2) map coordinates; None when not asked for
    label_issues: LabelIssues | None  # None when the dataset has fewer than two classes
    duplicates: list[DuplicateGroup]
    outlier_scores: np.ndarray  # (N,) float32, high = unusual


def explore_dataset(
    store: EmbeddingStore,
    model: ImageTextModel,
    dataset: Dataset,
    options: ExploreOptions = ExploreOptions(),
    *,
    cache: ExploreCache | None = None,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> Exploration | None:
    """Embeddings, neighbour graph, map, label issues, near-duplicates and outliers; None when stopped.

    ``cache`` None: a fresh ``ExploreCache()`` (the app's cache folder).
    """
    cache = cache if cache is not None else ExploreCache()
    emb = dataset_embeddings(store, model, dataset, callback=callback, should_stop=should_stop)
    if emb is None:
        return None
    graph = cache.neighbour_graph(
        emb.x, emb.fingerprint, k=options.neighbours, seed=options.seed, callback=callback, should_stop=should_stop
    )
    if graph is None:
        return None
    xy = None
    if options.with_map:
        xy = cache.embedding_map(emb.x, graph, emb.fingerprint, seed=options.seed, callback=callback,
                                 should_stop=should_stop)
        if xy is None:
            return None
    issues = None
    if len(np.unique(emb.labels[emb.labels != UNLABELLED])) >= 2:
        issues = rank_label_issues(emb.x, emb.labels, len(dataset.class_names), folds=options.folds,
                                   seed=options.seed, callback=callback, should_stop=should_stop)
        if issues is None:
            return None
    confirm = SamePicture(emb.paths, options.picture_match) if options.picture_match is not None else None
    return Exploration(
        embeddings=emb,
        graph=graph,
        xy=xy,
        label_issues=issues,
        duplicates=find_duplicates(graph, emb.splits, options.duplicate_threshold, confirm),
        outlier_scores=outlier_scores(graph, options.outlier_neighbours),
    )
