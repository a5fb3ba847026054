"""Outliers: images far from everything else (low local density), e.g. off-protocol images.

The score is the mean cosine distance (1 - similarity) to an image's ``k`` most similar images:
an image in a crowded part of the dataset scores near 0, a photo of a screen in a set of
microscope slides scores high. Read from the neighbour graph, so it costs nothing extra.
"""

from __future__ import annotations

import numpy as np

from clipstudio.engine.explore.neighbours import NeighbourGraph

DEFAULT_OUTLIER_NEIGHBOURS = 10


def outlier_scores(graph: NeighbourGraph, k: int = DEFAULT_OUTLIER_NEIGHBOURS) -> np.ndarray:
    """(N,) float32 mean cosine distance to the ``k`` nearest images; higher is more unusual."""
    k = min(k, graph.k)
    if k == 0:
        return np.zeros(len(graph.indices), np.float32)
    return (1.0 - graph.similarities[:, :k].mean(axis=1)).astype(np.float32)


def rank_outliers(scores: np.ndarray) -> np.ndarray:
    """Row positions, most unusual first."""
    return np.argsort(-scores, kind="stable")
