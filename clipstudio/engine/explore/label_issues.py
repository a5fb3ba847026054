"""Likely label mistakes: images whose given label a model trained without them disagrees with.

Confident learning (Northcutt et al. 2021, the method behind cleanlab) on out-of-fold predicted
probabilities: the labelled images are split into ``folds`` stratified parts, a multinomial
logistic regression (the linear probe's objective, minimised by ``lbfgs.minimise_probe``) is fitted
on the embeddings of all parts but one and predicts the held-out part, so no image is scored by a
head that saw it.

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

import numpy as np

from clipstudio.engine.cache.file_index import Progress
from clipstudio.engine.errors import DataError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

DEFAULT_FOLDS = 5
# L2 strength of the mean-loss objective (scikit-learn's C = 1 / (strength x images)); the linear
# probe's single-solve strength. On the BloodMNIST flipped-label bench 1e-5 to 1e-4 found the same
# flips, 1e-3 and stronger far fewer (the head then underfits and every image looks doubtful).
DEFAULT_STRENGTH = 1e-4
UNLABELLED = -1


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

    from clipstudio.engine.explore.lbfgs import minimise_probe  # deferred: imports torch

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
