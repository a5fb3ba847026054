from __future__ import annotations

import numpy as np

from clipstudio.engine.explore import find_duplicates, neighbour_graph, outlier_scores, rank_outliers


def _with_copies(x: np.ndarray, sources: list[int], noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    copies = x[sources] + noise * rng.normal(size=(len(sources), x.shape[1])).astype(np.float32)
    out = np.vstack([x, copies])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_near_copies_are_grouped_and_flagged_when_they_cross_splits(clustered):
    x, _ = clustered(300)
    x = _with_copies(x, [0, 1, 2, 2], noise=0.01)  # rows 300-303; image 2 copied twice
    splits = ["train"] * 300 + ["test", "train", "test", "test"]
    groups = find_duplicates(neighbour_graph(x), splits, threshold=0.97)
    as_sets = {frozenset(g.rows): g for g in groups}
    assert set(as_sets) == {frozenset({0, 300}), frozenset({1, 301}), frozenset({2, 302, 303})}
    assert as_sets[frozenset({0, 300})].across_splits and not as_sets[frozenset({1, 301})].across_splits
    assert as_sets[frozenset({2, 302, 303})].splits == ("test", "train")
    assert groups[-1].rows == (1, 301)  # across-split groups are listed first
    assert all(0.97 <= g.min_similarity <= g.max_similarity <= 1.0 + 1e-6 for g in groups)


def test_lower_threshold_finds_more_without_a_new_search(clustered):
    x, _ = clustered(200)
    graph = neighbour_graph(x)
    strict, loose = find_duplicates(graph, [""] * 200, 0.999), find_duplicates(graph, [""] * 200, 0.5)
    assert strict == [] and sum(len(g.rows) for g in loose) > 100


def test_an_image_unlike_all_others_is_the_top_outlier(clustered):
    x, _ = clustered(300, dim=64)
    odd = np.zeros((1, 64), np.float32)
    odd[0, 5] = 1.0  # a direction no cluster uses
    x = np.vstack([x, odd])
    scores = outlier_scores(neighbour_graph(x))
    assert rank_outliers(scores)[0] == 300 and scores.shape == (301,)
