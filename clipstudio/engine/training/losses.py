"""Contrastive losses over an in-batch image-text similarity matrix.

``logits[i, j] = logit_scale * <image_i, text_j>`` for a batch of B images and their B texts.
Each item carries a key (its class index, or an id of its caption text); items with equal keys
are positives of each other. With class data a batch often holds several images of one class,
and the plain CLIP loss would push them apart as negatives; the multi-positive loss doesn't.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_KINDS = ("multi_positive", "clip")


def positive_mask(keys: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: ``keys[i] == keys[j]`` (the diagonal is always positive)."""
    keys = keys.reshape(-1)
    return keys[:, None] == keys[None, :]


def multi_positive_targets(keys: torch.Tensor) -> torch.Tensor:
    """(B, B) float: each row spreads probability 1 evenly over that item's positives."""
    mask = positive_mask(keys).float()
    return mask / mask.sum(dim=1, keepdim=True)


def contrastive_loss(
    logits_per_image: torch.Tensor, keys: torch.Tensor | None = None, *, kind: str = "multi_positive"
) -> torch.Tensor:
    """Symmetric cross-entropy: the mean of the image->text and text->image losses.

    ``kind="multi_positive"`` uses ``multi_positive_targets(keys)`` as soft targets;
    ``kind="clip"`` (or ``keys=None``) the identity, i.e. the original CLIP loss.
    """
    logits = logits_per_image.float()
    n = logits.shape[0]
    if logits.ndim != 2 or logits.shape[1] != n:
        raise ValueError(f"expected a square (B, B) logit matrix, got {tuple(logits.shape)}")
    # The positive relation is symmetric, so the text->image targets are the same matrix transposed.
    return contrastive_loss_of_rows(logits, logits.t(), keys, keys, first=0, kind=kind)


def contrastive_loss_of_rows(
    image_rows: torch.Tensor,
    text_rows: torch.Tensor,
    row_keys: torch.Tensor | None,
    keys: torch.Tensor | None,
    *,
    first: int,
    kind: str = "multi_positive",
) -> torch.Tensor:
    """The contrastive loss of rows ``first ..`` of a larger batch, averaged over those rows.

    image_rows: (b, N) logits of these b images against all N texts; text_rows: (b, N) of these
    b texts against all N images; row_keys: (b,) their keys; keys: (N,) all keys. Several
    processes each take their own rows of the gathered batch (open_clip's ``local_loss``); the mean
    of their losses is the loss of the whole batch, and so are the averaged gradients.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSS_KINDS}")
    image_rows, text_rows = image_rows.float(), text_rows.float()
    if kind == "clip" or keys is None:
        labels = torch.arange(first, first + image_rows.shape[0], device=image_rows.device)
        return (F.cross_entropy(image_rows, labels) + F.cross_entropy(text_rows, labels)) / 2
    device = image_rows.device
    mask = (row_keys.reshape(-1, 1).to(device) == keys.reshape(1, -1).to(device)).float()
    targets = mask / mask.sum(dim=1, keepdim=True)
    loss_i2t = -(targets * F.log_softmax(image_rows, dim=1)).sum(dim=1).mean()
    loss_t2i = -(targets * F.log_softmax(text_rows, dim=1)).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


def in_batch_accuracy(logits_per_image: torch.Tensor, keys: torch.Tensor | None = None) -> float:
    """Fraction of images whose most similar text in the batch is one of their positives.

    Positives come from ``keys`` whatever the loss: with class prompts, two images of one class
    share the very same text, and picking either copy is right.
    """
    with torch.no_grad():
        best = logits_per_image.argmax(dim=1)
        n = logits_per_image.shape[0]
        if keys is None:
            hits = best == torch.arange(n, device=best.device)
        else:
            mask = positive_mask(keys.to(best.device))
            hits = mask[torch.arange(n, device=best.device), best]
        return float(hits.float().mean()) if n else 0.0
