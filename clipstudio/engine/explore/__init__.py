"""The data explorer: an embedding map, likely label mistakes, near-duplicates, outliers and the
hardest training images of a run, all from the cached image embeddings (issue 15).

Qt-free and torch-free to import; the label-mistake solver and the training-loss scoring import
torch when called. The slow functions take ``callback`` and ``should_stop`` and return None when stopped.
"""

from clipstudio.engine.explore.cache import ExploreCache
from clipstudio.engine.explore.duplicates import (
    DEFAULT_DUPLICATE_THRESHOLD,
    PICTURE_MATCH,
    DuplicateGroup,
    SamePicture,
    find_duplicates,
)
from clipstudio.engine.explore.embedding_map import embedding_map
from clipstudio.engine.explore.exploration import (
    DatasetEmbeddings,
    Exploration,
    ExploreOptions,
    dataset_embeddings,
    explore_dataset,
)
from clipstudio.engine.explore.label_issues import UNLABELLED, LabelIssues, rank_label_issues
from clipstudio.engine.explore.neighbours import NeighbourGraph, neighbour_graph
from clipstudio.engine.explore.outliers import outlier_scores, rank_outliers
from clipstudio.engine.explore.training_loss import TrainingLosses, training_losses

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "PICTURE_MATCH",
    "UNLABELLED",
    "DatasetEmbeddings",
    "DuplicateGroup",
    "Exploration",
    "ExploreCache",
    "ExploreOptions",
    "LabelIssues",
    "NeighbourGraph",
    "SamePicture",
    "TrainingLosses",
    "dataset_embeddings",
    "embedding_map",
    "explore_dataset",
    "find_duplicates",
    "neighbour_graph",
    "outlier_scores",
    "rank_label_issues",
    "rank_outliers",
    "training_losses",
]
