from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss

from clipstudio.engine.evaluation.calibration import (
    apply_temperature,
    brier_score,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    negative_log_likelihood,
    reliability_bins,
    softmax,
)


def _calibrated(n: int, n_classes: int, seed: int):
    """Logits whose softmax is the true class distribution: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, n_classes))
    probs = softmax(logits)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return labels, logits


def test_brier_score_matches_scikit_learn_binary_and_multiclass():
    labels2, logits2 = _calibrated(300, 2, seed=0)
    labels5, logits5 = _calibrated(300, 5, seed=1)

    assert brier_score(labels2, softmax(logits2)) == pytest.approx(brier_score_loss(labels2, softmax(logits2)[:, 1]))
    assert brier_score(labels5, softmax(logits5)) == pytest.approx(
        brier_score_loss(labels5, softmax(logits5), labels=range(5))
    )


def test_log_loss_matches_scikit_learn_and_the_stable_logit_form():
    labels, logits = _calibrated(300, 4, seed=2)
    probs = softmax(logits)

    assert log_loss(labels, probs) == pytest.approx(sklearn_log_loss(labels, probs, labels=range(4)))
    assert negative_log_likelihood(labels, logits) == pytest.approx(log_loss(labels, probs))


def test_reliability_bins_match_scikit_learn_quantile_calibration_curve():
    labels, logits = _calibrated(500, 3, seed=3)
    probs = softmax(logits)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels

    bins = reliability_bins(confidence, correct, n_bins=8)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=8, strategy="quantile")

    assert [b["accuracy"] for b in bins] == pytest.approx(list(accuracy))
    assert [b["confidence"] for b in bins] == pytest.approx(list(mean_confidence))
    assert sum(b["count"] for b in bins) == 500
    assert {b["count"] for b in bins} <= {62, 63}  # equal mass


def test_ece_on_a_tiny_hand_computed_example():
    # Two equal-mass bins: {0.6, 0.7} with 1 of 2 right, {0.8, 0.9} with 2 of 2 right.
    confidence = np.array([0.6, 0.7, 0.8, 0.9])
    correct = np.array([1, 0, 1, 1])

    ece = expected_calibration_error(confidence, correct, n_bins=2)

    # |0.5 - 0.65| * 2/4 + |1.0 - 0.85| * 2/4 = 0.15
    assert ece == pytest.approx(0.15)


def test_temperature_scaling_recovers_a_known_temperature():
    labels, logits = _calibrated(6000, 4, seed=4)

    temperature = fit_temperature(labels, logits * 3.0)  # three times too sure

    assert temperature == pytest.approx(3.0, rel=0.08)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 400))
    best_on_grid = grid[np.argmin([negative_log_likelihood(labels, logits * 3.0, t) for t in grid])]
    assert temperature == pytest.approx(best_on_grid, rel=0.01)


def test_temperature_fitted_on_validation_lowers_ece_and_log_loss_on_overconfident_test_logits():
    val_labels, val_logits = _calibrated(2000, 5, seed=5)
    test_labels, test_logits = _calibrated(2000, 5, seed=6)

    r = calibration_report(test_labels, test_logits * 4, val_labels=val_labels, val_logits=val_logits * 4)

    assert r.temperature == pytest.approx(4.0, rel=0.15)
    assert r.n == 2000 and r.n_validation == 2000
    assert r.ece_after < r.ece / 2
    assert r.log_loss_after < r.log_loss
    assert r.brier_after < r.brier
    assert r.reason is None
    json.dumps(r.to_dict(), allow_nan=False)


def test_temperature_never_changes_the_predicted_class():
    _, logits = _calibrated(200, 6, seed=7)

    assert np.array_equal(apply_temperature(logits, 0.3).argmax(axis=1), logits.argmax(axis=1))


def test_without_validation_nothing_is_fitted_and_the_report_says_why():
    labels, logits = _calibrated(100, 3, seed=8)

    r = calibration_report(labels, logits)

    assert r.ece is not None and r.n == 100
    assert r.temperature is None and r.ece_after is None and r.reliability_after is None
    assert "fitted on validation only" in r.reason
    assert r.to_dict()["fitted_on"] is None
