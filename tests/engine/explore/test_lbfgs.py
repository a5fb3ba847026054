from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from clipstudio.engine.explore.lbfgs import TOLERANCE, minimise_probe
from clipstudio.engine.training.methods.linear_probe import probe_objective, solve_probe


def _problem(clustered):
    x, labels = clustered(300, classes=4, dim=32)
    labels = labels.copy()
    labels[::25] = (labels[::25] + 1) % 4  # a few wrong labels: no perfectly separable fit
    return torch.from_numpy(x), torch.from_numpy(labels)


def test_it_finds_the_probe_solvers_minimum(clustered):
    x, y = _problem(clustered)
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


def test_stop_leaves_the_head_as_it_was(clustered):
    x, y = _problem(clustered)
    weight, bias = torch.ones(4, 32), torch.zeros(4)
    assert not minimise_probe(weight, bias, x, y, 1e-3, should_stop=lambda: True)
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
