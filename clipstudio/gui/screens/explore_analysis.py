"""The Explore screen's analysis: the worker job behind "Analyse" (run in a ``TaskWorker``), and the
map's colourings of its result (``colour_groups``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clipstudio.engine.data import Dataset
from clipstudio.engine.errors import DataError
from clipstudio.engine.explore import (
    DatasetEmbeddings,
    ExploreCache,
    LabelIssues,
    NeighbourGraph,
    dataset_embeddings,
    outlier_scores,
    rank_label_issues,
)
from clipstudio.gui.widgets.embedding_map import PointGroup, category_groups, value_groups

# Colour-by choices: (key, words).
COLOUR_BY = (
    ("class", "Class"),
    ("split", "Split"),
    ("guess", "Model's guess"),
    ("agreement", "Guess agrees with label"),
    ("quality", "Label quality"),
    ("outlier", "Outlier score"),
    ("loss", "Training loss"),
)


@dataclass(frozen=True)
class Analysis:
    """What "Analyse" found for one dataset with one model; rows are the embeddings' rows."""

    dataset_path: str
    class_names: list[str]
    emb: DatasetEmbeddings
    graph: NeighbourGraph
    xy: np.ndarray  # (N, 2) map positions
    issues: LabelIssues | None  # None without class labels
    issues_note: str  # why there is no ranking, when there isn't
    outliers: np.ndarray  # (N,) high = far from every other image


def analysis_job(store: Any, model: Any, dataset: Dataset, dataset_path: str):
    """The worker job behind "Analyse": embeddings, graph, map (both cached), label issues and outliers.

    As ``explore_dataset``, except that a dataset too small (or without classes) for the label-issue
    ranking still gets its map, duplicates and outliers, with a note saying why the ranking is missing.
    """

    def job(callback, should_stop) -> Analysis | None:
        emb = dataset_embeddings(store, model, dataset, callback=callback, should_stop=should_stop)
        if emb is None:
            return None
        cache = ExploreCache()
        graph = cache.neighbour_graph(emb.x, emb.fingerprint, callback=callback, should_stop=should_stop)
        if graph is None:
            return None
        xy = cache.embedding_map(emb.x, graph, emb.fingerprint, callback=callback, should_stop=should_stop)
        if xy is None:
            return None
        issues, note = None, ""
        if dataset.is_classification:
            try:
                issues = rank_label_issues(emb.x, emb.labels, len(dataset.class_names), callback=callback,
                                           should_stop=should_stop)
            except DataError as exc:
                note = str(exc)
            if issues is None and should_stop():
                return None
        else:
            note = "Finding label mistakes needs class labels; this dataset has none."
        return Analysis(dataset_path, list(dataset.class_names), emb, graph, np.asarray(xy), issues, note,
                        outlier_scores(graph))

    return job



def colour_groups(analysis: Analysis, key: str, losses: np.ndarray | None) -> list[PointGroup]:
    """The map's dots grouped for the colour-by choice ``key`` (one of COLOUR_BY); class when unavailable."""
    emb, issues = analysis.emb, analysis.issues
    if key == "split":
        names = sorted(set(emb.splits))
        codes = np.array([names.index(s) for s in emb.splits])
        return category_groups(codes, [n or "no split" for n in names])
    if key == "guess" and issues is not None:
        return category_groups(issues.suggested, analysis.class_names)
    if key == "agreement" and issues is not None:
        codes = np.where(issues.given >= 0, (issues.suggested != issues.given).astype(np.int64), -1)
        return category_groups(codes, ["agrees", "disagrees"], muted={"agrees"})  # disagreements stand out
    if key == "quality" and issues is not None:
        return value_groups(issues.label_quality)
    if key == "outlier":
        return value_groups(analysis.outliers, fmt="{:.3f}")
    if key == "loss" and losses is not None:
        return value_groups(losses)
    return category_groups(emb.labels, analysis.class_names)
