from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.conformal import (
    conformal_report,
    fit_conformal,
    nonconformity,
    prediction_sets,
)


def _synthetic(n: int, n_classes: int, rng: np.random.Generator, sharpen: float = 2.0):
    """Labels drawn from softmax(z); the model reports softmax(sharpen * z) (2: mediocre and over-confident)."""
    z = rng.normal(scale=1.5, size=(n, n_classes))
    truth = softmax(z)
    labels = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    return labels, softmax(sharpen * z)


def test_lac_and_aps_scores_on_a_hand_computed_example():
    probs = np.array([[0.2, 0.5, 0.3]])

    assert nonconformity(probs, "lac")[0] == pytest.approx([0.8, 0.5, 0.7])
    # APS: mass of the classes ranked above, plus the class's own.
    assert nonconformity(probs, "aps")[0] == pytest.approx([1.0, 0.5, 0.8])


def test_the_threshold_is_the_finite_sample_quantile():
    # 19 validation images, true-class probability 0.05, 0.10, ..., 0.95: LAC scores 0.95 ... 0.05.
    probs_true = np.arange(1, 20) / 20
    probs = np.column_stack([probs_true, 1 - probs_true])
    labels = np.zeros(19, dtype=np.int64)

    calibrator = fit_conformal(labels, probs, coverage=0.9)

    # ceil((19 + 1) * 0.9) = 18: the 18th smallest of the scores 0.05 ... 0.95 is 0.90.
    assert calibrator.quantile == pytest.approx(0.90)
    assert calibrator.n == 19
    sets = prediction_sets(calibrator, np.array([[0.15, 0.85], [0.05, 0.95]]))
    assert sets.tolist() == [[True, True], [False, True]]  # 1 - 0.15 = 0.85 <= 0.9; 1 - 0.05 > 0.9


def test_too_few_validation_images_for_the_coverage_give_every_class_and_say_why():
    labels = np.array([0, 1, 0, 1, 0])
    probs = np.tile([0.6, 0.4], (5, 1))

    r = conformal_report(np.array([0, 1]), np.tile([0.6, 0.4], (2, 1)), val_labels=labels, val_probs=probs)

    assert math.isinf(r.calibrator.quantile)
    assert r.mean_set_size == 2.0 and r.coverage == 1.0
    assert "only 5 validation images" in r.reason and "at least 9" in r.reason
    json.dumps(r.to_dict(), allow_nan=False)


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_coverage_holds_within_sampling_error_on_held_out_images(score):
    rng = np.random.default_rng(0)
    val_labels, val_probs = _synthetic(2000, 6, rng)
    test_labels, test_probs = _synthetic(20000, 6, rng)

    r = conformal_report(test_labels, test_probs, val_labels=val_labels, val_probs=val_probs, coverage=0.9,
                         score=score)

    # Coverage given the calibration set is Beta-distributed about 0.9 with sd ~ sqrt(0.09 / 2000);
    # the test sample adds sqrt(0.09 / 20000). Three standard deviations either side:
    tolerance = 3 * math.sqrt(0.09 / 2000 + 0.09 / 20000)
    assert abs(r.coverage - 0.9) < tolerance
    assert 1 < r.mean_set_size < 6  # informative: neither single guesses nor every class
    assert sum(r.set_size_counts.values()) == 20000


def test_aps_sets_grow_where_the_model_is_unsure_and_are_never_empty():
    rng = np.random.default_rng(1)
    val_labels, val_probs = _synthetic(2000, 6, rng, sharpen=1.0)
    calibrator = fit_conformal(val_labels, val_probs, score="aps")

    sure, unsure = np.array([[0.96, 0.01, 0.01, 0.01, 0.005, 0.005]]), np.full((1, 6), 1 / 6)

    assert prediction_sets(calibrator, sure).tolist() == [[True, False, False, False, False, False]]
    assert prediction_sets(calibrator, unsure).sum() >= 5


def test_without_validation_no_sets_are_formed_and_the_report_says_why():
    r = conformal_report(np.array([0, 1]), np.array([[0.7, 0.3], [0.2, 0.8]]))

    assert r.coverage is None and r.mean_set_size is None and r.sets is None
    assert "calibrated on validation only" in r.reason
    assert r.to_dict()["coverage_target"] == 0.9 and r.to_dict()["n"] == 2


def test_sets_by_class_name_in_json_when_asked():
    labels = np.zeros(30, dtype=np.int64)
    probs = np.tile([0.9, 0.1], (30, 1))
    r = conformal_report(np.array([0, 1]), np.array([[0.95, 0.05], [0.5, 0.5]]), val_labels=labels,
                         val_probs=probs)

    assert r.to_dict(["normal", "pneumonia"])["sets"] == [["normal"], []]
    assert "sets" not in r.to_dict()
