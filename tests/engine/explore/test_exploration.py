from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data import load_dataset
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.explore import (
    ExploreCache,
    ExploreOptions,
    SamePicture,
    explore_dataset,
    neighbour_graph,
)
from clipstudio.engine.explore.training_loss import training_losses
from clipstudio.engine.models import load_model


def pattern(seed: int, size: int = 64) -> Image.Image:
    """A smooth random colour pattern: coarse noise scaled up, so a resized copy looks the same."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


def dataset_with_resaved_copies(root, copies: int = 3):
    """train/ and test/ class folders of distinct patterns; the first ``copies`` training images are
    also in test/, resized and re-saved as JPEG (what a file hash misses). Returns (root, copy pairs)."""
    pairs = []
    for split, offset in (("train", 0), ("test", 100)):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for i in range(8):
                pattern(offset + 10 * c + i).save(root / split / name / f"{name}{i}.png")
    for i in range(copies):
        original = root / "train" / "a" / f"a{i}.png"
        copy = root / "test" / "a" / f"copy{i}.jpg"
        Image.open(original).resize((48, 48), Image.BILINEAR).save(copy, quality=70)
        pairs.append({str(original), str(copy)})
    return root, pairs


@pytest.fixture
def tiny_model(tiny_clip_dir):
    return load_model(tiny_clip_dir, device="cpu")


def test_resaved_copies_across_splits_are_found_and_nothing_is_written_to_the_dataset(tmp_path, tiny_model):
    root, pairs = dataset_with_resaved_copies(tmp_path / "data")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    dataset = load_dataset(root)
    found = explore_dataset(EmbeddingStore(EmbeddingCache()), tiny_model, dataset, ExploreOptions(folds=2))
    paths = found.embeddings.paths
    # The tiny random model finds all these pictures alike; the picture check keeps just the copies.
    groups = [{paths[r] for r in g.rows} for g in found.duplicates]
    assert len(groups) == len(pairs) and all(pair in groups for pair in pairs)
    assert all(g.across_splits and g.splits == ("test", "train") for g in found.duplicates)
    assert found.xy.shape == (len(dataset), 2) and found.label_issues is not None
    assert found.outlier_scores.shape == (len(dataset),)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_same_picture_confirms_resized_jpeg_copies_but_not_other_pictures(tmp_path):
    root, _pairs = dataset_with_resaved_copies(tmp_path / "data", copies=1)
    (root / "broken.png").write_bytes(b"not an image")
    paths = [root / "train" / "a" / "a0.png", root / "test" / "a" / "copy0.jpg", root / "train" / "a" / "a1.png",
             root / "broken.png"]
    same = SamePicture(paths)
    assert same(np.array([0, 0, 2, 3]), np.array([1, 2, 1, 0])).tolist() == [True, False, False, False]


def test_graph_and_map_come_from_the_cache_the_second_time(tmp_path, clustered, monkeypatch):
    x, _ = clustered(120)
    cache = ExploreCache(tmp_path / "explore")
    graph = cache.neighbour_graph(x, "model-1")
    xy = cache.embedding_map(x, graph, "model-1")
    files = sorted((tmp_path / "explore" / "model-1").iterdir())
    assert [f.name.split("-")[0] for f in files] == ["graph", "map"]

    def recomputed(*_args, **_kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr("clipstudio.engine.explore.cache.neighbour_graph", recomputed)
    monkeypatch.setattr("clipstudio.engine.explore.cache.embedding_map", recomputed)
    again = cache.neighbour_graph(x, "model-1")
    np.testing.assert_array_equal(again.indices, graph.indices)
    np.testing.assert_array_equal(cache.embedding_map(x, again, "model-1"), xy)


def test_a_damaged_cache_file_is_computed_again(tmp_path, clustered):
    x, _ = clustered(80)
    cache = ExploreCache(tmp_path / "explore")
    first = cache.neighbour_graph(x, "m")
    (file,) = (tmp_path / "explore" / "m").iterdir()
    file.write_bytes(b"not a zip")
    np.testing.assert_array_equal(cache.neighbour_graph(x, "m").indices, first.indices)
    assert np.load(file)["indices"].shape == first.indices.shape  # replaced by a good file


def test_other_embeddings_are_not_served_from_the_cache(tmp_path, clustered):
    x, _ = clustered(80)
    cache = ExploreCache(tmp_path / "explore")
    cache.neighbour_graph(x, "m")
    changed = x.copy()
    changed[[0, 1]] = changed[[1, 0]]
    np.testing.assert_array_equal(cache.neighbour_graph(changed, "m").indices, neighbour_graph(changed).indices)


def test_training_losses_of_a_finished_run_rank_its_training_images(trained):
    dataset = load_dataset(trained["data"])
    for run in ("probe", "full"):
        losses = training_losses(trained[run], dataset, EmbeddingStore(), device="cpu")
        assert len(losses.indices) == len(losses.losses) > 0 and np.all(losses.losses >= 0)
        assert losses.method == ("linear_probe" if run == "probe" else "full")
        hardest = losses.hardest()
        assert losses.losses[hardest[0]] == losses.losses.max()
