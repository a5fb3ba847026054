from __future__ import annotations

import numpy as np

from clipstudio.engine.events import ProgressUpdated
from clipstudio.engine.explore import neighbour_graph
from clipstudio.engine.explore.neighbours import EXACT_BELOW


def test_each_image_gets_its_most_similar_others_most_similar_first(clustered):
    x, _ = clustered(300)
    graph = neighbour_graph(x, k=5)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1)[:, :5]
    assert (graph.indices == expected).mean() > 0.99
    assert not (graph.indices == np.arange(300)[:, None]).any()  # never its own neighbour
    assert np.all(np.diff(graph.similarities, axis=1) <= 1e-6)
    np.testing.assert_allclose(graph.similarities, np.take_along_axis(sims, graph.indices, axis=1), atol=1e-5)


def test_large_data_uses_buckets_yet_finds_nearly_all_true_neighbours(clustered):
    n = EXACT_BELOW + 2000
    x, _ = clustered(n, classes=10, dim=96)
    events = []
    graph = neighbour_graph(x, k=10, callback=events.append)
    rows = np.arange(0, n, 97)
    sims = x[rows] @ x.T
    sims[np.arange(len(rows)), rows] = -np.inf
    true = np.argsort(-sims, axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(graph.indices[rows], true, strict=True)])
    assert recall > 0.95
    # Similarities are exact cosine similarities, whatever the candidates came from.
    np.testing.assert_allclose(graph.similarities[rows], np.einsum("bd,bkd->bk", x[rows], x[graph.indices[rows]]),
                               atol=1e-5)
    assert events[-1] == ProgressUpdated("find similar images", n, n)


def test_stopping_returns_none_and_tiny_data_shrinks_k(clustered):
    x, _ = clustered(EXACT_BELOW + 100)
    assert neighbour_graph(x, should_stop=lambda: True) is None
    assert neighbour_graph(x[:3], k=15).indices.shape == (3, 2)
