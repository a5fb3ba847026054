"""Likely label mistakes: images whose given label a model trained without them disagrees with.

Confident learning (Northcutt et al. 2021, the method behind cleanlab) on out-of-fold predicted
probabilities: the labelled images are split into ``folds`` stratified parts, a multinomial
logistic regression (the linear probe's objective, minimised by ``minimise_probe``) is fitted
on the embeddings of all parts but one and predicts the held-out part, so no image is scored by a
head that saw it.

The folds are solved by scipy's L-BFGS-B, not ``torch.optim``: building any ``torch.optim``
optimizer imports ``torch._dynamo`` (with sympy, ~840 modules) on its first use in a process,
1.8-5 s measured here, which was most of the first 10,000-image ranking's time
(docs/PERFORMANCE.md). Nothing else the Explore screen runs touches ``torch.optim``. Importing
``scipy.optimize`` costs 1-2 s once per session, and loads neither ``torch._dynamo`` nor sympy.

* ``label_quality`` is the self-confidence, the out-of-fold probability of the given label
  (cleanlab's default score): near 0 where the model is sure the label is wrong. The list is ranked
  by it, lowest first. It found more of the flipped labels on the BloodMNIST bench than the
  normalised margin did (top 5%: 77% against 60%).
* ``likely_mistake`` is confident learning's rule: of the classes whose probability reaches the
  class's threshold (the mean probability its own images get), the most probable is not the given one.
* ``suggested`` is the most probable class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.cache.file_index import Progress
from clipstudio.engine.errors import DataError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

if TYPE_CHECKING:
    import torch

DEFAULT_FOLDS = 5
# L2 strength of the mean-loss objective (scikit-learn's C = 1 / (strength x images)); the linear
# probe's single-solve strength. On the BloodMNIST flipped-label bench 1e-5 to 1e-4 found the same
# flips, 1e-3 and stronger far fewer (the head then underfits and every image looks doubtful).
DEFAULT_STRENGTH = 1e-4
UNLABELLED = -1
# The probe solver's stopping rules: largest gradient entry of the mean loss at most TOLERANCE, or the
# loss changing by at most 1e-12 relative in a step, or MAX_ITERATIONS; HISTORY curvature pairs kept.
MAX_ITERATIONS = 500
TOLERANCE = 1e-5
HISTORY = 20
# Below this many multiply-adds per loss the fit runs on one thread: the probe's solver measured
# OpenMP threads meeting at a barrier every millisecond 20x slower than one thread on a busy CPU.
_ONE_THREAD_BELOW = 50_000_000


@dataclass(frozen=True)
class LabelIssues:
    """Out-of-fold probabilities and the label-quality ranking of every row (unlabelled rows: quality NaN)."""

    probabilities: np.ndarray  # (N, C) float32
    given: np.ndarray  # (N,) int64, UNLABELLED where none
    suggested: np.ndarray  # (N,) int64
    label_quality: np.ndarray  # (N,) float32 in [0, 1]: probability of the given label, low = suspicious
    likely_mistake: np.ndarray  # (N,) bool
    order: np.ndarray  # (N,) int64 row positions, most suspicious first, unlabelled rows last


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number of each row: every class spread evenly over the folds, shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    fold = np.full(len(labels), -1, np.int64)
    offset = 0
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        # Continue the round-robin from the previous class so small classes don't all start at fold 0.
        fold[rows] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)
    return fold


def rank_label_issues(
    x: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    strength: float = DEFAULT_STRENGTH,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> LabelIssues | None:
    """Rank rows of L2-normalised ``x`` by how likely their label (``labels``, -1: none) is wrong.

    None when stopped. DataError when fewer than two classes or too few labelled images to hold out.
    """
    import torch  # deferred: the folds are fitted with torch; the app imports this package at start-up

    labels = np.asarray(labels, dtype=np.int64)
    labelled = np.flatnonzero(labels != UNLABELLED)
    present = np.unique(labels[labelled])
    if len(present) < 2:
        raise DataError("Finding label mistakes needs images of at least two classes.")
    if len(labelled) < 2 * folds:
        raise DataError(
            f"Finding label mistakes needs at least {2 * folds} labelled images for {folds} folds; "
            f"found {len(labelled)}."
        )
    y = labels[labelled]
    fold = stratified_folds(y, folds, seed)
    xs = torch.from_numpy(np.ascontiguousarray(x[labelled], dtype=np.float32))
    ys = torch.from_numpy(y)
    dim = xs.shape[1]
    weight = torch.zeros(n_classes, dim)
    bias = torch.zeros(n_classes)
    probs = np.zeros((len(labelled), n_classes), np.float32)
    progress = Progress(callback, "check labels", folds)
    for f in range(folds):
        held = fold == f
        train = torch.from_numpy(~held)
        # Warm start from the previous fold's head: the folds share most of their images.
        if not minimise_probe(weight, bias, xs[train], ys[train], strength, should_stop):
            return None
        logits = xs[torch.from_numpy(held)] @ weight.t() + bias
        probs[held] = torch.softmax(logits, dim=1).numpy()
        progress.update(f + 1)
    progress.update(folds, force=True)
    return _issues(probs, labels, labelled, n_classes)


def minimise_probe(
    weight: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    strength: float,
    should_stop: ShouldStop = never_stop,
) -> bool:
    """Minimise ``probe_objective`` (prior zero) over ``weight`` (C, D) and ``bias`` (C,) in place,
    starting from their values, in float64; False (and the head unchanged) when stopped."""
    import scipy.optimize  # deferred: 1-2 s of imports (~390 modules) that only this needs
    import torch  # deferred: see rank_label_issues

    from clipstudio.engine.training.methods.linear_probe import probe_objective  # deferred: imports torch

    if should_stop():
        return False
    n_classes, dim = weight.shape
    x64 = x.to(torch.float64)
    prior = torch.zeros(n_classes, dim, dtype=torch.float64)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.from_numpy(theta).requires_grad_(True)
        loss = probe_objective(t[: n_classes * dim].view(n_classes, dim), t[n_classes * dim:], x64, y, prior,
                               strength)
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad.numpy()

    stopped = False

    def check_stop(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        nonlocal stopped
        if should_stop():
            stopped = True
            raise StopIteration

    start = torch.cat([weight.detach().reshape(-1), bias.detach()]).to(torch.float64).numpy()
    threads = torch.get_num_threads()
    if x.shape[0] * x.shape[1] * n_classes < _ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        result = scipy.optimize.minimize(
            loss_and_grad, start, method="L-BFGS-B", jac=True, callback=check_stop,
            options={"maxiter": MAX_ITERATIONS, "gtol": TOLERANCE, "ftol": 1e-12, "maxcor": HISTORY},
        )
    finally:
        torch.set_num_threads(threads)
    if stopped:
        return False
    theta = torch.from_numpy(result.x)
    with torch.no_grad():
        weight.copy_(theta[: n_classes * dim].view(n_classes, dim))
        bias.copy_(theta[n_classes * dim:])
    return True


def _issues(probs: np.ndarray, labels: np.ndarray, labelled: np.ndarray, n_classes: int) -> LabelIssues:
    """Scores from the out-of-fold probabilities of the labelled rows."""
    n = len(labels)
    y = labels[labelled]
    rows = np.arange(len(labelled))
    quality = np.full(n, np.nan, np.float32)
    quality[labelled] = probs[rows, y]
    # Confident learning's per-class threshold: the mean probability of a class over its own images.
    thresholds = np.array(
        [probs[y == c, c].mean() if np.any(y == c) else np.inf for c in range(n_classes)], np.float32
    )
    above = np.where(probs >= thresholds[None, :], probs, -np.inf)
    mistake = np.zeros(n, bool)
    mistake[labelled] = np.isfinite(above.max(axis=1)) & (above.argmax(axis=1) != y)
    all_probs = np.full((n, n_classes), np.nan, np.float32)
    all_probs[labelled] = probs
    suggested = np.full(n, UNLABELLED, np.int64)
    suggested[labelled] = probs.argmax(axis=1)
    ranked = labelled[np.argsort(quality[labelled], kind="stable")]
    order = np.concatenate([ranked, np.setdiff1d(np.arange(n), labelled)]).astype(np.int64)
    return LabelIssues(all_probs, labels.copy(), suggested, quality, mistake, order)
