from __future__ import annotations

import numpy as np

from clipstudio.engine.explore import embedding_map, neighbour_graph


def test_map_has_one_point_per_image_and_keeps_classes_apart(clustered):
    x, labels = clustered(400)
    xy = embedding_map(x, neighbour_graph(x), seed=0, epochs=150)
    assert xy.shape == (400, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    nearest_on_map = d.argmin(axis=1)
    assert (labels[nearest_on_map] == labels).mean() > 0.95


def test_same_seed_same_map_other_seed_other_map(clustered):
    x, _ = clustered(200)
    graph = neighbour_graph(x)
    first = embedding_map(x, graph, seed=3, epochs=60)
    np.testing.assert_array_equal(first, embedding_map(x, graph, seed=3, epochs=60))
    assert not np.array_equal(first, embedding_map(x, graph, seed=4, epochs=60))


def test_stopping_returns_none_and_reports_progress(clustered):
    x, _ = clustered(100)
    graph = neighbour_graph(x)
    calls = []
    assert embedding_map(x, graph, epochs=50, should_stop=lambda: len(calls) > 0 or calls.append(1)) is None
    events = []
    embedding_map(x, graph, epochs=50, callback=events.append)
    assert events[-1].stage == "lay out map" and events[-1].done == events[-1].total == 50
