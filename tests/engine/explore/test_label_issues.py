from __future__ import annotations

import numpy as np
import pytest

from clipstudio.engine.errors import DataError
from clipstudio.engine.explore import UNLABELLED, rank_label_issues


def test_flipped_labels_rank_at_the_top_with_their_true_class_suggested(clustered):
    x, truth = clustered(400, classes=4)
    rng = np.random.default_rng(1)
    flipped = rng.choice(400, 12, replace=False)
    given = truth.copy()
    given[flipped] = (truth[flipped] + 1) % 4
    issues = rank_label_issues(x, given, 4, folds=5)
    top = issues.order[:12]
    assert len(set(top.tolist()) & set(flipped.tolist())) >= 11
    assert (issues.suggested[flipped] == truth[flipped]).mean() > 0.9
    assert issues.likely_mistake[flipped].mean() > 0.6 and issues.likely_mistake.sum() < 20
    assert issues.label_quality[flipped].max() < 0.5 < np.median(issues.label_quality)
    np.testing.assert_allclose(issues.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_unlabelled_images_are_not_scored_and_come_last(clustered):
    x, labels = clustered(120, classes=3)
    labels = labels.copy()
    labels[:6] = UNLABELLED
    issues = rank_label_issues(x, labels, 3, folds=3)
    assert np.isnan(issues.label_quality[:6]).all() and set(issues.order[-6:].tolist()) == set(range(6))


def test_same_seed_same_ranking_and_stop_gives_none(clustered):
    x, labels = clustered(100)
    a, b = rank_label_issues(x, labels, 4, seed=2), rank_label_issues(x, labels, 4, seed=2)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert rank_label_issues(x, labels, 4, should_stop=lambda: True) is None


@pytest.mark.parametrize(
    ("labels", "needle"),
    [(np.zeros(50, np.int64), "two classes"), (np.arange(6) % 2, "at least 10 labelled images")],
)
def test_too_little_labelled_data_is_one_clear_error(clustered, labels, needle):
    x, _ = clustered(len(labels))
    with pytest.raises(DataError, match=needle):
        rank_label_issues(x, labels, 2)
