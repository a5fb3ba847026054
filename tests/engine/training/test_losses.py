"""The contrastive losses, checked by hand on tiny batches."""

from __future__ import annotations

import math

import torch

from clipstudio.engine.training.losses import contrastive_loss, in_batch_accuracy, multi_positive_targets


def test_items_sharing_a_class_are_positives_not_negatives():
    targets = multi_positive_targets(torch.tensor([0, 0, 1]))

    assert torch.allclose(targets, torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))


def test_multi_positive_loss_matches_a_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    keys = torch.tensor([0, 0, 1])

    def row_loss(row, positives):
        log_z = math.log(sum(math.exp(v) for v in row))
        return -sum(row[j] - log_z for j in positives) / len(positives)

    rows = logits.tolist()
    cols = logits.t().tolist()
    positives = [[0, 1], [0, 1], [2]]
    i2t = sum(row_loss(rows[i], positives[i]) for i in range(3)) / 3
    t2i = sum(row_loss(cols[i], positives[i]) for i in range(3)) / 3

    assert math.isclose(float(contrastive_loss(logits, keys)), (i2t + t2i) / 2, rel_tol=1e-6)


def test_clip_loss_treats_only_the_diagonal_as_positive():
    logits = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    labels = torch.arange(2)
    expected = (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.t(), labels)
    ) / 2

    assert torch.isclose(contrastive_loss(logits, torch.tensor([0, 0]), kind="clip"), expected)
    # With all keys distinct the two losses agree.
    assert torch.isclose(contrastive_loss(logits, torch.tensor([0, 1])), expected)


def test_in_batch_accuracy_counts_a_same_class_text_as_a_hit():
    logits = torch.tensor([[1.0, 5.0, 0.0], [0.0, 1.0, 5.0], [0.0, 0.0, 5.0]])
    # Row 0 picks text 1 (same class: a hit); row 1 picks text 2 (other class: a miss); row 2 its own.
    assert math.isclose(in_batch_accuracy(logits, torch.tensor([0, 0, 1])), 2 / 3, rel_tol=1e-6)
