"""The frozen image trunk's outputs, kept per training image, when they cannot change during a run.

When nothing in the image tower trains except its projection (LoRA on the built-in model, whose
EfficientNet has no attention to adapt; LiT with the image tower locked) and the training images are
not augmented, the trunk turns each training image into the same features at every step. A run of
thousands of steps over a few dozen images (CLIP-LoRA's 500 steps per image per class) then spends
most of its time recomputing them. ``TrunkCache`` computes an image's trunk features the first time a
batch holds it and serves them afterwards: the losses and gradients are those of the uncached run
(the trunk runs in eval mode either way), only faster.

Not used with several processes (each holds a part of every batch), or when the features of every
training image would take more than ``MAX_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

MAX_BYTES = 2 * 1024**3


class TrunkCache:
    """Trunk features of the training images by row, filled as batches first show them."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = int(n_rows)
        self.store: torch.Tensor | None = None
        self.filled = np.zeros(self.n_rows, dtype=bool)
        self.disabled = False

    def features(
        self, rows: np.ndarray, pixels: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor | None:
        """The trunk features of ``rows`` (their pixels are ``pixels``), computing those not kept yet.

        Returns None (and stops caching) when the whole training set's features would be too large.
        """
        if self.disabled:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        missing = np.flatnonzero(~self.filled[rows])
        if len(missing):
            fresh = compute(pixels[torch.as_tensor(missing)])
            if self.store is None:
                size = self.n_rows * fresh[0].numel() * fresh.element_size()
                if size > MAX_BYTES:
                    self.disabled = True
                    return None
                self.store = torch.empty((self.n_rows, *fresh.shape[1:]), dtype=fresh.dtype, device=fresh.device)
            self.store[torch.as_tensor(rows[missing], device=self.store.device)] = fresh
            self.filled[rows[missing]] = True
        return self.store[torch.as_tensor(rows, device=self.store.device)]
