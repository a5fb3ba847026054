"""Datasets: readers (class folders, JSON, JSONL/CSV), image decoding, splits and the health report."""

from clipstudio.engine.data.dataset import SPLIT_NAMES, Dataset, Problem, Sample
from clipstudio.engine.data.readers import FORMATS, detect_format, load_dataset, load_dataset_from_config

__all__ = ["FORMATS", "SPLIT_NAMES", "Dataset", "Problem", "Sample", "detect_format", "load_dataset", "load_dataset_from_config"]
