from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from clipstudio.engine.errors import DataError
from clipstudio.engine.explore import UNLABELLED, rank_label_issues
from clipstudio.engine.explore.label_issues import TOLERANCE, minimise_probe
from clipstudio.engine.training.methods.linear_probe import probe_objective, solve_probe


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


def _noisy_problem(clustered):
    x, labels = clustered(300, classes=4, dim=32)
    labels = labels.copy()
    labels[::25] = (labels[::25] + 1) % 4  # a few wrong labels: no perfectly separable fit
    return torch.from_numpy(x), torch.from_numpy(labels)


def test_the_fold_solver_finds_the_probe_solvers_minimum(clustered):
    x, y = _noisy_problem(clustered)
    weight, bias = torch.zeros(4, 32), torch.zeros(4)
    assert minimise_probe(weight, bias, x, y, 1e-3)
    reference_w = torch.zeros(4, 32, requires_grad=True)
    reference_b = torch.zeros(4, requires_grad=True)
    solve_probe(reference_w, reference_b, x, y, torch.zeros(4, 32), 1e-3)
    with torch.no_grad():
        ours = torch.softmax(x @ weight.t() + bias, 1)
        theirs = torch.softmax(x @ reference_w.t() + reference_b, 1)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=2e-3)
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    probe_objective(w, b, x, y, torch.zeros(4, 32), 1e-3).backward()
    assert max(float(w.grad.abs().max()), float(b.grad.abs().max())) <= 10 * TOLERANCE


@pytest.mark.parametrize("stop_after", [0, 3])
def test_stop_leaves_the_head_as_it_was(clustered, stop_after):
    x, y = _noisy_problem(clustered)
    weight, bias = torch.ones(4, 32), torch.zeros(4)
    calls = iter(range(1000))
    assert not minimise_probe(weight, bias, x, y, 1e-3, should_stop=lambda: next(calls) >= stop_after)
    assert torch.equal(weight, torch.ones(4, 32)) and torch.equal(bias, torch.zeros(4))


def test_ranking_label_mistakes_does_not_load_torchs_compiler():
    # torch.optim's first use imports torch._dynamo: seconds on the first Analyse of a session.
    code = (
        "import sys, numpy as np\n"
        "from clipstudio.engine.explore import rank_label_issues\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(60, 8)).astype(np.float32)\n"
        "rank_label_issues(x, np.arange(60) % 3, 3)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
