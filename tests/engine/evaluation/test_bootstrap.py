from __future__ import annotations

import numpy as np
import pytest

from clipstudio.engine.evaluation import bootstrap as bootstrap_module
from clipstudio.engine.evaluation.bootstrap import (
    Estimate,
    accuracy_resamples,
    bootstrap,
    percentile_ci,
    resample_chunks,
    resample_counts,
)
from clipstudio.engine.evaluation.zero_shot import _bootstrap as zero_shot_bootstrap


def test_resample_chunks_give_the_asked_number_of_resamples_in_bounded_chunks(monkeypatch):
    monkeypatch.setattr(bootstrap_module, "CHUNK_CELLS", 1000)
    chunks = list(resample_chunks(300, 25, seed=1))

    assert sum(len(c) for c in chunks) == 25
    assert all(c.size <= 1000 for c in chunks)
    assert all(c.min() >= 0 and c.max() < 300 for c in chunks)


def test_same_seed_gives_the_same_resamples_so_two_statistics_are_paired():
    first = np.concatenate(list(resample_chunks(50, 40, seed=7)))
    again = np.concatenate(list(resample_chunks(50, 40, seed=7)))
    other = np.concatenate(list(resample_chunks(50, 40, seed=8)))

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_resample_counts_count_each_cell_per_resample():
    idx = np.array([[0, 0, 1, 2], [3, 3, 3, 3]])
    cell_of = np.array([0, 1, 1, 2])

    counts = resample_counts(idx, cell_of, 3)

    assert counts.tolist() == [[2, 2, 0], [0, 0, 4]]


def test_accuracy_resamples_reproduce_zero_shot_bootstrap_exactly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))

    values = bootstrap(
        lambda idx: np.column_stack(accuracy_resamples(labels, pred, 4, idx)), 200, n_bootstrap=300, seed=3
    )
    accs, baccs = zero_shot_bootstrap(labels, pred, 4, 300, 3)

    assert np.allclose(values[:, 0], accs)
    assert np.allclose(values[:, 1], baccs)


def test_accuracy_resamples_of_the_identity_resample_are_the_plain_figures():
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])

    acc, bacc = accuracy_resamples(labels, pred, 3, np.arange(6)[None, :])

    assert acc[0] == pytest.approx(4 / 6)
    assert bacc[0] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_percentile_ci_reads_the_2_5th_and_97_5th_percentiles():
    values = np.random.default_rng(0).normal(size=1000)

    ci, reason = percentile_ci(values)

    assert reason is None
    assert ci == pytest.approx(list(np.percentile(values, [2.5, 97.5])))


def test_percentile_ci_gives_a_reason_instead_of_a_degenerate_interval():
    ci, reason = percentile_ci(np.full(200, 1 / 3))

    assert ci is None
    assert "same value" in reason


def test_percentile_ci_gives_a_reason_when_the_metric_is_often_undefined():
    values = np.r_[np.full(80, np.nan), np.linspace(0, 1, 120)]

    ci, reason = percentile_ci(values)

    assert ci is None
    assert "undefined on 40%" in reason


def test_percentile_ci_leaves_out_the_few_undefined_resamples():
    values = np.r_[np.full(5, np.nan), np.linspace(0, 1, 195)]

    ci, _ = percentile_ci(values)

    assert ci == pytest.approx(list(np.percentile(np.linspace(0, 1, 195), [2.5, 97.5])))


def test_estimate_json_carries_n_and_a_reason_only_when_something_is_missing():
    assert Estimate(0.5, [0.4, 0.6], 30).to_dict() == {"value": 0.5, "ci95": [0.4, 0.6], "n": 30}
    assert Estimate.undefined(3, "no images of 'b'").to_dict() == {
        "value": None, "ci95": None, "n": 3, "reason": "no images of 'b'"
    }
