from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.operating_point import (
    OperatingPoint,
    apply_operating_point,
    choose_operating_point,
    wilson_interval,
)

# 10 validation images by falling score; P = positive. Thresholds give (sensitivity, specificity):
# 0.9 (1/4, 6/6) 0.8 (2/4, 6/6) 0.7 (2/4, 5/6) 0.6 (3/4, 5/6) 0.5 (3/4, 4/6) 0.4 (4/4, 4/6) ...
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
POSITIVE = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0], dtype=bool)


def test_youden_picks_the_threshold_with_the_largest_sensitivity_plus_specificity():
    point = choose_operating_point(POSITIVE, SCORES, positive_class="pneumonia")

    # J: 0.9 -> .25, 0.8 -> .5, 0.6 -> .583, 0.4 -> .667 (the largest), 0.3 -> .5
    assert point.threshold == 0.4
    assert point.val_sensitivity == 1.0
    assert point.val_specificity == pytest.approx(4 / 6)
    assert (point.rule, point.n, point.positive_class) == ("youden", 10, "pneumonia")


def test_target_sensitivity_picks_the_most_specific_threshold_that_reaches_it():
    point = choose_operating_point(
        POSITIVE, SCORES, positive_class="p", rule="target_sensitivity", target=0.7
    )

    assert point.threshold == 0.6  # sensitivity 3/4 >= 0.7 first reached here
    assert point.val_sensitivity == 0.75
    assert point.target == 0.7


def test_target_specificity_picks_the_most_sensitive_threshold_that_reaches_it():
    point = choose_operating_point(
        POSITIVE, SCORES, positive_class="p", rule="target_specificity", target=0.8
    )

    assert point.threshold == 0.6  # specificity 5/6 >= 0.8; at 0.5 it falls to 4/6
    assert point.val_specificity == pytest.approx(5 / 6)


def test_unreachable_target_specificity_says_so():
    positive = np.array([0, 1, 1, 0], dtype=bool)
    with pytest.raises(DataError, match="no threshold reaches a specificity"):
        choose_operating_point(positive, np.array([0.9, 0.5, 0.4, 0.1]), positive_class="p",
                               rule="target_specificity", target=0.99)


def test_validation_without_both_kinds_of_image_cannot_choose_a_point():
    with pytest.raises(DataError, match="both kinds"):
        choose_operating_point(np.ones(5, dtype=bool), np.linspace(0, 1, 5), positive_class="p")


def test_a_target_rule_needs_a_target():
    with pytest.raises(ConfigError, match="target"):
        choose_operating_point(POSITIVE, SCORES, positive_class="p", rule="target_sensitivity")


def test_applied_on_test_it_gives_sensitivity_specificity_ppv_npv_with_their_n():
    point = OperatingPoint(rule="fixed", threshold=0.5, positive_class="p")
    positive = np.array([1] * 10 + [0] * 20, dtype=bool)
    scores = np.r_[[0.9] * 8, [0.1] * 2, [0.6] * 5, [0.2] * 15]  # tp 8, fn 2, fp 5, tn 15

    m = apply_operating_point(point, positive, scores)

    assert (m.tp, m.fn, m.fp, m.tn, m.n) == (8, 2, 5, 15, 30)
    assert (m.sensitivity.value, m.sensitivity.n) == (0.8, 10)
    assert (m.specificity.value, m.specificity.n) == (0.75, 20)
    assert (m.ppv.value, m.ppv.n) == (pytest.approx(8 / 13), 13)
    assert (m.npv.value, m.npv.n) == (pytest.approx(15 / 17), 17)
    assert m.sensitivity.ci95 == pytest.approx([0.4902, 0.9433], abs=1e-4)  # Wilson 8/10, textbook value


def test_wilson_interval_stays_sensible_at_zero_and_one_hundred_percent():
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)


def test_a_proportion_with_no_images_is_undefined_with_a_reason():
    point = OperatingPoint(rule="fixed", threshold=0.99, positive_class="p")

    m = apply_operating_point(point, np.array([1, 0, 0], dtype=bool), np.array([0.5, 0.2, 0.1]))

    assert m.ppv.value is None and m.ppv.ci95 is None
    assert "no test image is called positive" in m.ppv.reason
    json.dumps(m.to_dict(), allow_nan=False)


def test_operating_point_round_trips_through_json():
    point = choose_operating_point(POSITIVE, SCORES, positive_class="pneumonia", rule="target_sensitivity",
                                   target=0.95, temperature=1.7)

    again = OperatingPoint.from_dict(json.loads(json.dumps(point.to_dict())))

    assert again == point


def test_unknown_keys_in_a_stored_operating_point_are_rejected_by_name():
    data = {"rule": "youden", "threshold": 0.4, "positive_class": "p", "treshold": 0.5}

    with pytest.raises(ConfigError, match="treshold"):
        OperatingPoint.from_dict(data)
