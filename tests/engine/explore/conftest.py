"""Synthetic embeddings for the explorer's tests: clusters on a low-dimensional manifold, like CLIP's."""

from __future__ import annotations

import numpy as np
import pytest


def clustered_embeddings(n: int, classes: int = 4, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) L2-normalised float32 rows in ``classes`` well-separated clusters, and each row's class."""
    rng = np.random.default_rng(seed)
    latent_dim = 8
    centres = 3.0 * rng.normal(size=(classes, latent_dim))
    labels = np.arange(n) % classes
    latent = centres[labels] + rng.normal(size=(n, latent_dim))
    x = latent @ rng.normal(size=(latent_dim, dim)) + 2.0 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels.astype(np.int64)


@pytest.fixture
def clustered():
    """``clustered(n, classes=4, dim=64, seed=0)`` -> (embeddings, labels)."""
    return clustered_embeddings
