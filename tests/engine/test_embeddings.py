from __future__ import annotations

import os

import numpy as np
import pytest

from clipstudio.engine.embeddings import (
    EmbeddingCache,
    TextEmbeddingCache,
    encode_image_files,
    encode_texts,
    l2_normalise,
    normalised_text_embeddings,
)
from clipstudio.engine.events import ProgressUpdated
from tests.engine.fake_model import COLOURS, FakeModel, text_vector, write_png


@pytest.fixture
def colour_files(tmp_path):
    names = ["red", "green", "blue", "yellow", "cyan", "magenta"]
    return [write_png(tmp_path / "imgs" / f"{n}.png", COLOURS[n]) for n in names]


def _expected(rgb):
    v = np.array([*(np.array(rgb) / 255.0), 0.01, 0.01, 0.01])
    return v / np.linalg.norm(v)


def test_encodes_images_in_input_order(colour_files):
    model = FakeModel()
    out = encode_image_files(model, colour_files, batch_size=4)
    assert out.indices == list(range(6))
    assert out.embeddings.shape == (6, 6) and out.embeddings.dtype == np.float32
    assert (out.n_cached, out.n_encoded, out.problems, out.cancelled) == (0, 6, [], False)
    for row, path in zip(out.embeddings, colour_files, strict=True):
        np.testing.assert_allclose(row, _expected(COLOURS[path.stem]), atol=1e-6)
    assert model.image_calls == 2  # batches of 4 + 2


def test_second_run_with_the_same_model_reads_the_cache(colour_files):
    first = encode_image_files(FakeModel(), colour_files, cache=EmbeddingCache())
    model = FakeModel()
    second = encode_image_files(model, colour_files, cache=EmbeddingCache())
    assert model.image_calls == 0
    assert (second.n_cached, second.n_encoded) == (6, 0)
    np.testing.assert_array_equal(second.embeddings, first.embeddings)
    assert second.indices == first.indices


def test_changed_file_is_re_encoded(colour_files):
    cache = EmbeddingCache()
    encode_image_files(FakeModel(), colour_files, cache=cache)
    changed = colour_files[0]
    write_png(changed, COLOURS["white"], size=12)  # new content and size
    touched = colour_files[1]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # same bytes, newer mtime

    model = FakeModel()
    out = encode_image_files(model, colour_files, cache=cache)
    assert (out.n_cached, out.n_encoded) == (4, 2)
    assert model.images_encoded == 2
    np.testing.assert_allclose(out.embeddings[0], _expected(COLOURS["white"]), atol=1e-6)

    again = FakeModel()
    encode_image_files(again, colour_files, cache=cache)
    assert again.images_encoded == 0  # the fresh vectors replaced the stale ones


def test_unreadable_images_are_skipped_and_listed(colour_files, tmp_path):
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(b"not an image at all")
    missing = tmp_path / "imgs" / "missing.png"
    paths = [colour_files[0], broken, colour_files[1], missing, colour_files[2]]

    out = encode_image_files(FakeModel(), paths, cache=EmbeddingCache(), batch_size=2)
    assert out.indices == [0, 2, 4]
    assert out.embeddings.shape == (3, 6)
    np.testing.assert_allclose(out.embeddings[1], _expected(COLOURS["green"]), atol=1e-6)
    assert [p.path for p in out.problems] == [str(broken), str(missing)]
    assert all(p.reason for p in out.problems)


def test_no_readable_images_gives_an_empty_result(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    out = encode_image_files(FakeModel(), [bad])
    assert out.embeddings.shape == (0, 6) and out.indices == [] and len(out.problems) == 1


def test_cancelling_returns_the_work_done_so_far(colour_files):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 2  # stop after the first batch of 2

    cache = EmbeddingCache()
    out = encode_image_files(FakeModel(), colour_files, cache=cache, batch_size=2, should_stop=should_stop)
    assert out.cancelled
    assert out.indices == [0, 1] and out.embeddings.shape == (2, 6)

    resumed = encode_image_files(FakeModel(), colour_files, cache=cache, batch_size=2)
    assert not resumed.cancelled
    assert (resumed.n_cached, resumed.n_encoded) == (2, 4)


def test_progress_reaches_the_total_and_never_goes_back(colour_files):
    events = []
    cache = EmbeddingCache()
    encode_image_files(FakeModel(), colour_files[:2], cache=cache)
    encode_image_files(FakeModel(), colour_files, cache=cache, batch_size=1, callback=events.append)
    assert events and all(isinstance(e, ProgressUpdated) for e in events)
    assert {e.stage for e in events} == {"encode images"}
    assert all(e.total == 6 for e in events)
    done = [e.done for e in events]
    assert done == sorted(done) and len(set(done)) == len(done)
    assert done[0] == 2 and done[-1] == 6


def test_progress_is_throttled(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", (i, i, i)) for i in range(60)]
    events = []
    encode_image_files(FakeModel(), paths, batch_size=1, callback=events.append)
    assert events[-1].done == 60
    assert len(events) < 30


@pytest.mark.parametrize("model_dir", ["tiny_clip_dir", "tiny_dual_dir"])
def test_encoded_files_are_the_models_own_preprocessing_and_encoding(model_dir, request, tmp_path):
    from PIL import Image

    from clipstudio.engine.data.images import load_image
    from clipstudio.engine.models import load_model

    model = load_model(request.getfixturevalue(model_dir))
    model.bf16_inference = False  # exact comparison; the split path changes pixels, not precision
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(32, 32), (29, 45), (70, 40), (9, 5), (28, 28)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)

    out = encode_image_files(model, paths, batch_size=len(paths))
    expected = model.encode_images(model.preprocess([load_image(p) for p in paths])).numpy()
    np.testing.assert_allclose(out.embeddings, expected, atol=1e-5)


class _InvertingModel(FakeModel):
    """Describes a plain preprocessing but preprocesses differently (inverts colours)."""

    def __init__(self):
        from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

        super().__init__()
        self.preprocessing = ImagePreprocessing(image_size=4, mean=(0, 0, 0), std=(1, 1, 1))

    def image_preprocessing(self):
        return self.preprocessing

    def preprocess(self, images):
        return 1.0 - super().preprocess(images)


def test_a_model_is_encoded_with_its_own_preprocess_when_its_description_disagrees(colour_files):
    out = encode_image_files(_InvertingModel(), colour_files[:1], batch_size=2)  # a red image
    np.testing.assert_allclose(out.embeddings[0], _expected(COLOURS["cyan"]), atol=1e-6)


def test_encode_texts_batches_and_keeps_order():
    model = FakeModel()
    texts = ["red", "green lesion", "blue", "肺炎", "yellow"]
    emb = encode_texts(model, texts, batch_size=2)
    assert model.text_calls == 3
    assert emb.shape == (5, 6) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[1], text_vector("green lesion"), atol=1e-6)
    assert encode_texts(model, []).shape == (0, 6)


def test_normalised_text_embeddings_encode_only_texts_the_cache_lacks():
    model = FakeModel()  # records every text it encodes
    cache = TextEmbeddingCache()
    first = normalised_text_embeddings(model, ["red", "green", "blue"], cache=cache)
    assert model.texts_encoded == ["red", "green", "blue"]
    again = normalised_text_embeddings(model, ["blue", "red", "cyan", "cyan"], cache=cache)
    assert model.texts_encoded[3:] == ["cyan"]
    np.testing.assert_array_equal(again[:2], first[[2, 0]])
    uncached = normalised_text_embeddings(FakeModel(), ["blue", "red", "cyan", "cyan"])
    np.testing.assert_allclose(again, uncached)
    np.testing.assert_allclose(
        uncached, l2_normalise(encode_texts(FakeModel(), ["blue", "red", "cyan", "cyan"]))
    )
    assert normalised_text_embeddings(model, [], cache=cache).shape == (0, 6)


def test_texts_dropped_from_a_full_cache_are_encoded_again():
    model = FakeModel()
    cache = TextEmbeddingCache(max_texts=2)
    normalised_text_embeddings(model, ["red", "green"], cache=cache)
    normalised_text_embeddings(model, ["red"], cache=cache)  # red is now the most recent
    normalised_text_embeddings(model, ["blue"], cache=cache)
    normalised_text_embeddings(model, ["red", "green"], cache=cache)
    assert model.texts_encoded == ["red", "green", "blue", "green"]


def test_the_same_text_under_another_model_is_encoded_again():
    cache = TextEmbeddingCache()
    normalised_text_embeddings(FakeModel("model-a"), ["red"], cache=cache)
    other = FakeModel("model-b")
    normalised_text_embeddings(other, ["red"], cache=cache)
    assert other.texts_encoded == ["red"]
