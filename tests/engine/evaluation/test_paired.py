from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest, chi2
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.paired import compare_paired, compare_results, mcnemar_test
from clipstudio.engine.evaluation.zero_shot import score_embeddings


def _model(labels: np.ndarray, n_classes: int, skill: float, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(len(labels), n_classes)) + skill * np.eye(n_classes)[labels]
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _discordant(only_a: int, only_b: int, both: int = 10):
    correct_a = np.r_[np.ones(only_a), np.zeros(only_b), np.ones(both)].astype(bool)
    correct_b = np.r_[np.zeros(only_a), np.ones(only_b), np.ones(both)].astype(bool)
    return correct_a, correct_b


def test_mcnemar_uses_the_exact_binomial_test_for_few_discordant_images():
    test = mcnemar_test(*_discordant(1, 6))

    # 2 * (C(7,0) + C(7,1)) / 2**7 = 0.125
    assert test.p_value == pytest.approx(0.125)
    assert test.p_value == pytest.approx(binomtest(1, 7, 0.5).pvalue)
    assert (test.only_a_right, test.only_b_right, test.method) == (1, 6, "exact binomial")


def test_mcnemar_uses_chi_square_with_continuity_correction_for_many():
    test = mcnemar_test(*_discordant(10, 30))

    # (|10 - 30| - 1)^2 / 40 = 9.025
    assert test.p_value == pytest.approx(chi2.sf(9.025, 1))
    assert test.method == "chi-square with continuity correction"


def test_mcnemar_without_discordant_images_finds_no_difference():
    assert mcnemar_test(*_discordant(0, 0)).p_value == 1.0


def test_differences_are_b_minus_a_and_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    a, b = _model(labels, 3, 1.0, rng), _model(labels, 3, 1.5, rng)

    r = compare_paired(labels, a, b, ["x", "y", "z"], names=("zero-shot", "fine-tuned"), n_bootstrap=300)

    acc = [np.mean(p.argmax(axis=1) == labels) for p in (a, b)]
    bacc = [balanced_accuracy_score(labels, p.argmax(axis=1)) for p in (a, b)]
    auc = [roc_auc_score(labels, p, multi_class="ovr") for p in (a, b)]
    assert (r.accuracy.a, r.accuracy.b) == (pytest.approx(acc[0]), pytest.approx(acc[1]))
    assert r.accuracy.difference.value == pytest.approx(acc[1] - acc[0])
    assert r.balanced_accuracy.difference.value == pytest.approx(bacc[1] - bacc[0])
    assert r.macro_auc.difference.value == pytest.approx(auc[1] - auc[0])
    assert r.n == 300
    json.dumps(r.to_dict(), allow_nan=False)


def test_a_clearly_better_model_is_called_better_only_when_the_ci_excludes_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    weak, strong = _model(labels, 2, 0.3, rng), _model(labels, 2, 2.5, rng)

    r = compare_paired(labels, weak, strong, ["normal", "pneumonia"], names=("before", "after"), n_bootstrap=300)

    assert r.accuracy.difference.ci95[0] > 0
    assert r.accuracy.better == "after" and r.macro_auc.better == "after"
    assert "after is better" in r.accuracy.verdict
    assert r.mcnemar.p_value < 1e-6


def test_two_equally_good_models_are_not_called_different():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    a, b = _model(labels, 2, 1.0, rng), _model(labels, 2, 1.0, rng)

    r = compare_paired(labels, a, b, ["n", "p"], n_bootstrap=300)

    lo, hi = r.accuracy.difference.ci95
    assert lo < 0 < hi
    assert r.accuracy.better is None
    assert "includes 0" in r.accuracy.verdict


def test_auc_difference_on_single_class_images_is_undefined_with_a_reason():
    labels = np.zeros(20, dtype=np.int64)
    rng = np.random.default_rng(3)

    r = compare_paired(labels, _model(labels, 2, 1.0, rng), _model(labels, 2, 2.0, rng), ["n", "p"],
                       n_bootstrap=100)

    assert r.macro_auc.difference.value is None and r.macro_auc.better is None
    assert "undefined" in r.macro_auc.difference.reason
    json.dumps(r.to_dict(), allow_nan=False)


def test_many_classes_compare_accuracy_with_cis_and_auc_without():
    from clipstudio.engine.evaluation.roc import MAX_CLASSES_WITH_DETAIL

    k = MAX_CLASSES_WITH_DETAIL + 20
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(k), 3)
    probs_a, probs_b = rng.dirichlet(np.ones(k), size=(2, len(labels)))
    result = compare_paired(labels, probs_a, probs_b, [f"c{i}" for i in range(k)], n_bootstrap=200)
    assert result.accuracy.difference.ci95 is not None
    auc = result.macro_auc
    assert auc.difference.value == pytest.approx(auc.b - auc.a)
    assert auc.difference.ci95 is None and auc.better is None and "classes" in auc.verdict
    json.dumps(result.to_dict())


def _scored(labels, skill, seed, paths, names=("normal", "pneumonia")):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(labels), 8)) + skill * np.eye(8)[labels]
    return score_embeddings(emb, labels, np.eye(8)[: len(names)], list(names), logit_scale=10.0, paths=paths,
                            n_bootstrap=0, with_logits=True)


def test_two_scorings_of_the_same_images_compare_as_their_probabilities_do():
    labels = np.random.default_rng(0).integers(0, 2, 200)
    paths = [f"img_{i}.png" for i in range(200)]
    weak, strong = _scored(labels, 0.2, 1, paths), _scored(labels, 3.0, 2, paths)

    got = compare_results(weak, strong, names=("run A", "run B"), n_bootstrap=200)

    want = compare_paired(labels, softmax(weak.logits), softmax(strong.logits), ["normal", "pneumonia"],
                          names=("run A", "run B"), n_bootstrap=200)
    assert got.to_dict() == want.to_dict()
    assert got.accuracy.better == "run B"


def test_scorings_of_other_images_or_classes_are_refused():
    labels = np.array([0, 1, 0, 1])
    a = _scored(labels, 1.0, 0, ["a.png", "b.png", "c.png", "d.png"])
    with pytest.raises(DataError, match="not scored on the same images"):
        compare_results(a, _scored(labels, 1.0, 0, ["a.png", "b.png", "c.png", "e.png"]))
    with pytest.raises(DataError, match="different classes"):
        compare_results(a, _scored(labels, 1.0, 0, ["a.png", "b.png", "c.png", "d.png"], names=("x", "y")))
