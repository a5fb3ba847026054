from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from clipstudio.engine.evaluation.roc import (
    auc_resamples,
    macro_auc_resamples,
    pr_points,
    roc_analysis,
    roc_points,
    thin_curve,
)


def _predictions(n: int, n_classes: int, seed: int = 0, decimals: int = 1):
    """Labels and softmax probabilities with a signal, rounded so that scores tie."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = np.round(rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels], decimals)
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


def test_binary_auc_and_average_precision_match_scikit_learn():
    labels, probs = _predictions(400, 2)

    r = roc_analysis(labels, probs, ["normal", "pneumonia"], n_bootstrap=200)

    assert r.positive_class == "pneumonia"
    assert list(r.per_class) == ["pneumonia"]
    assert r.macro_auc.value == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    assert r.per_class["pneumonia"].average_precision.value == pytest.approx(
        average_precision_score(labels, probs[:, 1])
    )
    lo, hi = r.macro_auc.ci95
    assert lo < r.macro_auc.value < hi


def test_positive_class_chooses_the_score():
    labels, probs = _predictions(300, 2, seed=1)

    r = roc_analysis(labels, probs, ["tumour", "normal"], positive_class="tumour", n_bootstrap=0)

    assert list(r.per_class) == ["tumour"]
    assert r.macro_auc.value == pytest.approx(roc_auc_score(labels == 0, probs[:, 0]))


def test_multiclass_one_vs_rest_and_macro_auc_match_scikit_learn():
    labels, probs = _predictions(600, 5, seed=2)
    names = list("abcde")

    r = roc_analysis(labels, probs, names, n_bootstrap=100)

    assert r.macro_auc.value == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    for c, name in enumerate(names):
        assert r.per_class[name].auc.value == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
        assert r.per_class[name].n_positive == int(np.sum(labels == c))
    assert r.positive_class is None


def test_full_curves_match_scikit_learn_with_ties():
    labels, probs = _predictions(300, 2, seed=3)
    positive, scores = labels == 1, probs[:, 1]

    fpr, tpr, thresholds = roc_points(positive, scores)
    ref_fpr, ref_tpr, ref_thresholds = roc_curve(positive, scores, drop_intermediate=False)
    recall, precision, pr_thresholds = pr_points(positive, scores)
    ref_precision, ref_recall, ref_pr_thresholds = precision_recall_curve(positive, scores)

    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    assert np.allclose(thresholds[1:], ref_thresholds[1:])
    # scikit-learn lists the PR curve by rising threshold; ours falls, like the ROC.
    assert np.allclose(recall[::-1], ref_recall) and np.allclose(precision[::-1], ref_precision)
    assert np.allclose(pr_thresholds[1:][::-1], ref_pr_thresholds)


def test_resampled_auc_equals_scikit_learn_on_the_resampled_images():
    labels, probs = _predictions(120, 2, seed=4)
    idx = np.random.default_rng(5).integers(0, 120, size=(6, 120))

    both = auc_resamples(labels == 1, probs[:, 1], idx)

    for row, resample in zip(both, idx, strict=True):
        y, s = labels[resample] == 1, probs[resample, 1]
        assert row[0] == pytest.approx(roc_auc_score(y, s))
        assert row[1] == pytest.approx(average_precision_score(y, s))


def test_macro_auc_resamples_of_the_identity_resample_is_the_macro_auc():
    labels, probs = _predictions(200, 4, seed=6)

    macro = macro_auc_resamples(labels, probs, np.arange(200)[None, :])

    assert macro[0] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))


def test_curves_are_thinned_to_a_plot_sized_count_keeping_the_ends():
    labels, probs = _predictions(3000, 2, seed=7, decimals=6)

    r = roc_analysis(labels, probs, ["a", "b"], n_bootstrap=0, max_points=150)
    roc = r.per_class["b"].roc

    assert len(roc["fpr"]) <= 150
    assert (roc["fpr"][0], roc["tpr"][0], roc["threshold"][0]) == (0.0, 0.0, None)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert len(r.per_class["b"].pr["recall"]) <= 150


def test_thin_curve_keeps_short_curves_whole():
    x = np.linspace(0, 1, 20)

    assert thin_curve(x, x, 50).tolist() == list(range(20))


def test_a_class_absent_from_test_has_a_reason_instead_of_an_auc():
    labels, probs = _predictions(300, 3, seed=8)
    labels[labels == 2] = 0  # no image of "c" left

    r = roc_analysis(labels, probs, ["a", "b", "c"], n_bootstrap=100)

    assert r.per_class["c"].auc.value is None and r.per_class["c"].auc.ci95 is None
    assert "no images of 'c'" in r.per_class["c"].auc.reason
    assert r.per_class["c"].roc is None
    assert r.left_out == ["c"]
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in (0, 1)])
    assert r.macro_auc.value == pytest.approx(expected)
    json.dumps({"auc": r.auc_dict(), "roc": r.curves_dict()}, allow_nan=False)  # no NaN anywhere


def test_a_single_class_test_set_has_no_auc_and_says_why():
    labels = np.zeros(10, dtype=np.int64)
    probs = np.tile([0.7, 0.3], (10, 1))

    r = roc_analysis(labels, probs, ["normal", "pneumonia"], n_bootstrap=50)

    assert r.macro_auc.value is None
    assert "all 10 images are 'normal'" in r.macro_auc.reason
    json.dumps(r.auc_dict(), allow_nan=False)


def test_rarely_defined_class_gets_no_interval_but_keeps_its_auc():
    labels, probs = _predictions(200, 2, seed=9)
    labels[:] = 0
    labels[0] = 1  # one positive image: absent from about a third of the resamples

    r = roc_analysis(labels, probs, ["a", "b"], n_bootstrap=200)

    assert r.macro_auc.value is not None
    assert r.macro_auc.ci95 is None
    assert "undefined" in r.macro_auc.reason


def test_many_classes_get_aucs_without_cis_or_curves_and_say_why():
    """5,000 classes x 1,000 resamples x every image would take hours (it did: zeroshot hung); above
    MAX_CLASSES_WITH_DETAIL the AUCs come without CIs and curves, with the reason."""
    from clipstudio.engine.evaluation.roc import MAX_CLASSES_WITH_DETAIL

    k = MAX_CLASSES_WITH_DETAIL + 20
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(k), 3)
    probs = rng.dirichlet(np.ones(k), size=len(labels))
    names = [f"c{i}" for i in range(k)]
    result = roc_analysis(labels, probs, names, n_bootstrap=1000)
    assert result.macro_auc.ci95 is None and f"{MAX_CLASSES_WITH_DETAIL} classes" in result.macro_auc.reason
    one = result.per_class["c7"]
    assert one.auc.value == pytest.approx(roc_auc_score(labels == 7, probs[:, 7]))
    assert one.auc.ci95 is None and one.roc is None and one.pr is None
    json.dumps(result.auc_dict())
