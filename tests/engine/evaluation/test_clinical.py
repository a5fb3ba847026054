from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.calibration import fit_temperature, softmax
from clipstudio.engine.evaluation.clinical import clinical_metrics
from clipstudio.engine.evaluation.operating_point import OperatingPoint, choose_operating_point

BINARY = ["normal", "pneumonia"]
EIGHT = [f"cell{i}" for i in range(8)]


def _logits(n: int, n_classes: int, seed: int, overconfidence: float = 3.0):
    """Labels drawn from softmax(z); the model's logits are ``overconfidence * z``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[rng.integers(0, n_classes, n)]
    labels = (rng.random(n)[:, None] > np.cumsum(softmax(z), axis=1)).sum(axis=1)
    return labels, overconfidence * z


def test_binary_report_has_exactly_the_issue_keys_each_with_n_and_valid_json():
    val_labels, val_logits = _logits(400, 2, seed=0)
    test_labels, test_logits = _logits(500, 2, seed=1)

    d = clinical_metrics(
        test_labels, test_logits, BINARY, val_labels=val_labels, val_logits=val_logits, n_bootstrap=200
    ).to_dict()

    assert list(d) == ["auc", "roc", "calibration", "operating_point", "conformal"]
    assert all(block["n"] == 500 for block in d.values())
    assert set(d["calibration"]) >= {"ece", "ece_after", "temperature"}
    assert set(d["conformal"]) >= {"coverage_target", "coverage", "mean_set_size"}
    assert set(d["auc"]["macro"]) >= {"value", "ci95"} and "ci95" in d["auc"]["per_class"]["pneumonia"]
    assert set(d["operating_point"]) >= {"threshold", "sensitivity", "specificity", "ppv", "npv"}
    json.dumps(d, allow_nan=False)


def test_everything_fitted_is_fitted_on_validation_only():
    val_labels, val_logits = _logits(400, 2, seed=2)
    test_labels, test_logits = _logits(500, 2, seed=3)
    other_labels, other_logits = _logits(500, 2, seed=4, overconfidence=0.5)

    m = clinical_metrics(test_labels, test_logits, BINARY, val_labels=val_labels, val_logits=val_logits,
                         n_bootstrap=0)
    other = clinical_metrics(other_labels, other_logits, BINARY, val_labels=val_labels, val_logits=val_logits,
                             n_bootstrap=0)

    temperature = fit_temperature(val_labels, val_logits)
    assert m.calibration.temperature == pytest.approx(temperature)
    expected = choose_operating_point(val_labels == 1, softmax(val_logits, temperature)[:, 1],
                                      positive_class="pneumonia", temperature=temperature)
    assert m.operating_point.point == expected
    # Other test images change no fitted value.
    assert other.calibration.temperature == m.calibration.temperature
    assert other.operating_point.point.threshold == m.operating_point.point.threshold
    assert other.conformal.calibrator == m.conformal.calibrator


def test_calibrated_probabilities_lower_the_ece_on_test():
    val_labels, val_logits = _logits(1000, 2, seed=5)
    test_labels, test_logits = _logits(1000, 2, seed=6)

    m = clinical_metrics(test_labels, test_logits, BINARY, val_labels=val_labels, val_logits=val_logits,
                         n_bootstrap=0)

    assert m.calibration.temperature == pytest.approx(3.0, rel=0.2)
    assert m.calibration.ece_after < m.calibration.ece


def test_without_validation_the_fitted_parts_say_so_instead_of_fitting_on_test():
    test_labels, test_logits = _logits(300, 2, seed=7)

    d = clinical_metrics(test_labels, test_logits, BINARY, n_bootstrap=100).to_dict()

    assert d["calibration"]["temperature"] is None and d["calibration"]["ece_after"] is None
    assert "validation only" in d["calibration"]["reason"]
    assert "validation only" in d["operating_point"]["reason"]
    assert d["conformal"]["coverage"] is None and "validation only" in d["conformal"]["reason"]
    assert d["auc"]["macro"]["value"] == pytest.approx(roc_auc_score(test_labels, softmax(test_logits)[:, 1]))
    json.dumps(d, allow_nan=False)


def test_a_stored_operating_point_is_applied_as_it_is():
    test_labels, test_logits = _logits(300, 2, seed=8)
    stored = OperatingPoint.from_dict(
        {"rule": "target_sensitivity", "target": 0.95, "threshold": 0.3, "positive_class": "pneumonia",
         "temperature": 2.0, "n": 250}
    )

    m = clinical_metrics(test_labels, test_logits, BINARY, operating_point=stored, n_bootstrap=0)

    called = softmax(test_logits, 2.0)[:, 1] >= 0.3
    assert m.operating_point.point == stored
    assert m.operating_point.tp == int(np.sum(called & (test_labels == 1)))
    assert m.to_dict()["operating_point"]["fitted_on"] == {"split": "validation", "n": 250}


def test_target_sensitivity_rule_reaches_its_target_on_validation():
    val_labels, val_logits = _logits(400, 2, seed=9)
    test_labels, test_logits = _logits(400, 2, seed=10)

    m = clinical_metrics(test_labels, test_logits, BINARY, val_labels=val_labels, val_logits=val_logits,
                         operating_point={"target_sensitivity": 0.95}, n_bootstrap=0)

    assert m.operating_point.point.val_sensitivity >= 0.95
    assert m.operating_point.point.rule == "target_sensitivity"


def test_an_unknown_operating_point_rule_is_a_clear_error():
    test_labels, test_logits = _logits(50, 2, seed=11)

    with pytest.raises(ConfigError, match="youden"):
        clinical_metrics(test_labels, test_logits, BINARY, operating_point={"sensitivity": 0.9},
                         val_labels=test_labels, val_logits=test_logits)


def test_multiclass_report_has_per_class_auc_and_no_operating_point_and_subgroups_when_asked():
    val_labels, val_logits = _logits(800, 8, seed=12)
    test_labels, test_logits = _logits(800, 8, seed=13)
    groups = np.where(np.arange(800) % 2, "site 1", "site 2")

    d = clinical_metrics(test_labels, test_logits, EIGHT, val_labels=val_labels, val_logits=val_logits,
                         groups=groups, coverage=0.8, n_bootstrap=100).to_dict()

    assert list(d) == ["auc", "roc", "calibration", "conformal", "subgroups"]
    assert list(d["auc"]["per_class"]) == EIGHT
    assert d["conformal"]["coverage_target"] == 0.8
    assert list(d["subgroups"]["groups"]) == ["site 1", "site 2"]
    probs = softmax(test_logits, d["calibration"]["temperature"])
    assert d["auc"]["macro"]["value"] == pytest.approx(roc_auc_score(test_labels, probs, multi_class="ovr"))
    json.dumps(d, allow_nan=False)


def test_a_class_absent_from_test_is_reported_not_averaged_as_nan():
    test_labels, test_logits = _logits(300, 3, seed=14)
    test_labels[test_labels == 2] = 0

    d = clinical_metrics(test_labels, test_logits, ["a", "b", "c"], n_bootstrap=50).to_dict()

    assert d["auc"]["per_class"]["c"]["value"] is None
    assert "no images of 'c'" in d["auc"]["per_class"]["c"]["reason"]
    assert d["auc"]["left_out"] == ["c"] and d["auc"]["macro"]["value"] is not None
    json.dumps(d, allow_nan=False)


def test_no_test_images_is_a_clear_error():
    with pytest.raises(DataError, match="no test images"):
        clinical_metrics(np.zeros(0, dtype=np.int64), np.zeros((0, 2)), BINARY)
