from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import ConfigError, DataError, ImageError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.search import rank, search_image, search_text, top_indices
from tests.engine.fake_model import COLOURS, FakeModel, write_png


def _caption_dataset(tmp_path):
    items = [
        ("r", "red", ["a red square"]),
        ("g", "green", ["green tissue", "a green patch"]),
        ("b", "blue", ["blue stain"]),
        ("y", "yellow", ["yellow fluid"]),
    ]
    samples = [
        Sample(path=write_png(tmp_path / "imgs" / f"{stem}.png", COLOURS[colour]), captions=caps)
        for stem, colour, caps in items
    ]
    return Dataset(root=tmp_path, format="test", samples=samples)


def test_search_text_finds_the_matching_image_first(tmp_path):
    ds = _caption_dataset(tmp_path)
    hits = search_text(EmbeddingStore(EmbeddingCache()), FakeModel(), ds, "something blue", top=2)
    assert len(hits) == 2
    assert hits[0].path == str(tmp_path / "imgs" / "b.png")
    assert hits[0].captions == ["blue stain"]
    assert hits[0].score > hits[1].score


def test_a_second_query_encodes_only_its_text(tmp_path):
    ds = _caption_dataset(tmp_path)
    model, store = FakeModel(), EmbeddingStore()
    search_text(store, model, ds, "red", top=1)
    hits = search_text(store, model, ds, "yellow", top=1)
    assert hits[0].path == str(tmp_path / "imgs" / "y.png")
    assert model.images_encoded == 4


def test_search_image_finds_similar_images_and_captions(tmp_path):
    ds = _caption_dataset(tmp_path)
    query = write_png(tmp_path / "query.png", (10, 240, 10))
    images, captions = search_image(EmbeddingStore(EmbeddingCache()), FakeModel(), ds, query, top=3)
    assert images[0].path == str(tmp_path / "imgs" / "g.png")
    assert len(images) == 3
    assert {h.captions[0] for h in captions[:2]} == {"green tissue", "a green patch"}
    assert all(h.path == str(tmp_path / "imgs" / "g.png") for h in captions[:2])
    json.dumps([h.to_dict() for h in images + captions])


def test_an_image_of_the_dataset_finds_itself_first_without_being_encoded_again(tmp_path):
    ds = _caption_dataset(tmp_path)
    model = FakeModel()
    images, _captions = search_image(EmbeddingStore(), model, ds, ds.samples[3].path, top=2)
    assert images[0].path == str(ds.samples[3].path)
    assert images[0].score == pytest.approx(1.0, abs=1e-5)
    assert model.images_encoded == 4  # the gallery only


def test_search_image_with_an_unreadable_query_is_an_image_error(tmp_path):
    ds = _caption_dataset(tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    with pytest.raises(ImageError, match="bad.png"):
        search_image(EmbeddingStore(), FakeModel(), ds, bad)


def test_an_empty_query_or_dataset_is_a_users_error(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        search_text(EmbeddingStore(), FakeModel(), _caption_dataset(tmp_path), "  ")
    empty = Dataset(root=tmp_path, format="test", samples=[])
    with pytest.raises(DataError, match="no images"):
        search_text(EmbeddingStore(), FakeModel(), empty, "red")


def test_rank_orders_by_cosine_and_keeps_dataset_order_on_ties():
    gallery = np.array([[1, 0], [0, 2], [2, 0], [1, 1]], dtype=np.float32)
    rows, scores = rank(gallery, np.array([3.0, 0.0]), top=3)
    assert rows.tolist() == [0, 2, 3]
    assert scores[:3] == pytest.approx([1.0, 0.0, 1.0])


@pytest.mark.parametrize("n", [1, 7, 80, 5000])
@pytest.mark.parametrize("top", [0, 1, 10, 100])
def test_top_indices_match_a_stable_full_sort_ties_included(n, top):
    rng = np.random.default_rng(n + top)
    for scores in (rng.standard_normal(n), rng.integers(0, 5, n).astype(np.float32)):
        assert list(top_indices(scores, top)) == list(np.argsort(-scores, kind="stable")[:top])


def test_top_indices_with_nan_scores_match_the_full_sort():
    scores = np.array([np.nan] * 50 + [0.5, 0.1] + [np.nan] * 50)
    assert list(top_indices(scores, 3)) == list(np.argsort(-scores, kind="stable")[:3])
