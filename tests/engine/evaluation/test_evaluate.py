"""Evaluating a model the way its dataset calls for, and the headline numbers of a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.evaluate import evaluate_model, evaluation_kind, summary_metrics
from clipstudio.engine.prompts import PromptSet
from tests.engine.fake_model import COLOURS, FakeModel, write_png


def _dataset(tmp_path: Path, *, labels: bool, captions: bool) -> Dataset:
    samples = [
        Sample(
            path=write_png(tmp_path / f"{name}.png", COLOURS[name]),
            label=i if labels else None,
            captions=[f"a {name} square"] if captions else [],
        )
        for i, name in enumerate(("red", "green", "blue"))
    ]
    return Dataset(root=tmp_path, format="test", samples=samples,
                   class_names=["red", "green", "blue"] if labels else [])


def test_class_data_is_scored_zero_shot_and_pairs_by_retrieval(tmp_path):
    classes = _dataset(tmp_path / "c", labels=True, captions=False)
    pairs = _dataset(tmp_path / "p", labels=False, captions=True)
    assert evaluation_kind(classes) == "zeroshot" and evaluation_kind(pairs) == "retrieval"
    row = summary_metrics(evaluate_model(FakeModel(), classes, PromptSet(), kind="zeroshot"))
    assert row == {"n": 3, "accuracy": 1.0, "balanced_accuracy": 1.0}
    row = summary_metrics(evaluate_model(FakeModel(), pairs, PromptSet(), kind="retrieval", ks=(1,)))
    assert row == {"n": 3, "i2t_R@1": 1.0, "t2i_R@1": 1.0, "mean_recall": 1.0}


def test_data_without_classes_or_captions_cannot_be_evaluated(tmp_path):
    with pytest.raises(DataError, match="class labels .* or image captions"):
        evaluation_kind(_dataset(tmp_path, labels=False, captions=False))
