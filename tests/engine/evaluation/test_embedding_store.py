"""The in-memory embedding store the scoring screens share and each CLI command makes."""

from __future__ import annotations

import numpy as np
import pytest

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore, require_some_images
from tests.engine.fake_model import COLOURS, FakeModel, write_png


@pytest.fixture
def paths(tmp_path):
    return [write_png(tmp_path / f"{name}.png", COLOURS[name]) for name in ("red", "green", "blue")]


def test_images_are_encoded_once_per_model_and_list(paths):
    store, model = EmbeddingStore(), FakeModel()
    first = store.image_embeddings(model, paths)
    again = store.image_embeddings(model, paths)
    assert again is first and model.images_encoded == 3
    store.image_embeddings(model, paths[:2])  # another list is another entry
    store.image_embeddings(FakeModel("other"), paths)  # so is another model
    assert model.images_encoded == 5


def test_clear_forgets_everything_but_the_disk_cache_still_serves(paths):
    store, model = EmbeddingStore(EmbeddingCache()), FakeModel()
    store.image_embeddings(model, paths)
    store.clear()
    encoded = store.image_embeddings(model, paths)
    assert model.images_encoded == 3 and encoded.n_cached == 3  # from disk, not the model


def test_the_least_recently_used_list_is_dropped_first(paths):
    store, model = EmbeddingStore(max_entries=2), FakeModel()
    for n in (1, 2, 3):
        store.image_embeddings(model, paths[:n])
    store.image_embeddings(model, paths[:3])
    assert model.images_encoded == 1 + 2 + 3
    store.image_embeddings(model, paths[:1])  # dropped: encoded again
    assert model.images_encoded == 7


def test_a_cancelled_encoding_is_not_kept(paths):
    store, model = EmbeddingStore(), FakeModel()
    partial = store.image_embeddings(model, paths, batch_size=1, should_stop=lambda: True)
    assert partial.cancelled
    whole = store.image_embeddings(model, paths)
    assert not whole.cancelled and len(whole.indices) == 3


def test_text_lists_are_kept_normalised(paths):
    store, model = EmbeddingStore(), FakeModel()
    emb = store.text_embeddings(model, ["red stain", "blue"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    store.text_embeddings(model, ["red stain", "blue"])
    assert model.texts_encoded == ["red stain", "blue"]


def test_no_readable_image_is_a_data_error_naming_the_first(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    ds = Dataset(root=tmp_path, format="test", samples=[Sample(bad, 0)])
    with pytest.raises(DataError, match="bad.png"):
        require_some_images(EmbeddingStore().image_embeddings(FakeModel(), ds.paths), ds)
