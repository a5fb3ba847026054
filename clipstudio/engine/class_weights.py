"""How image embeddings become class logits: one small numpy type, importable without torch.

The prompt ensemble (zero-shot) and a linear probe's trained head are both a ``ClassWeights``; the
scoring code, the exports and WiSE-FT take it as it is. Kept apart from ``linear_probe_head`` (which
needs torch for its files) so that the scoring screens import without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassWeights:
    """How image embeddings become class logits: ``scale * unit(image) @ rows.T + bias``.

    ``bias`` None: a cosine head (unit rows: the prompt ensemble's text embeddings, with the
    model's logit scale). A linear probe's head has free rows, scale 1 and a bias.
    """

    rows: np.ndarray  # (C, D) float32
    scale: float
    bias: np.ndarray | None = None  # (C,) float32

    @classmethod
    def affine(cls, rows: np.ndarray, bias: np.ndarray) -> ClassWeights:
        return cls(np.asarray(rows, np.float32), 1.0, np.asarray(bias, np.float32).reshape(-1))

    def as_affine(self) -> ClassWeights:
        """The same logits with scale 1 and a bias (a cosine head's rows times its scale, bias 0)."""
        if self.bias is not None and self.scale == 1.0:
            return self
        bias = np.zeros(len(self.rows), np.float32) if self.bias is None else self.bias
        return ClassWeights.affine(self.scale * self.rows, bias)

    def select(self, index: list[int]) -> ClassWeights:
        bias = None if self.bias is None else self.bias[index].copy()
        return ClassWeights(self.rows[index].copy(), self.scale, bias)

    def logits(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, C) float64 logits of (N, D) image embeddings (normalised here; any length)."""
        x = np.asarray(image_emb, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out = self.scale * (x @ self.rows.astype(np.float64).T)
        return out if self.bias is None else out + self.bias.astype(np.float64)


def mix_logits(a: ClassWeights, b: ClassWeights, alpha: float) -> ClassWeights:
    """The head whose logits are ``(1 - alpha) * a's + alpha * b's`` (WiSE-FT of a linear probe)."""
    a, b = a.as_affine(), b.as_affine()
    return ClassWeights.affine((1.0 - alpha) * a.rows + alpha * b.rows, (1.0 - alpha) * a.bias + alpha * b.bias)


