"""The speed-ups that are on by default give the same answers: bf16 inference, top-k, text cache, allocator."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from clipstudio.engine.embeddings import TextEmbeddingCache, encode_texts, l2_normalise
from clipstudio.engine.models import load_model
from clipstudio.engine.models.torch_model import bf16_is_fast
from clipstudio.engine.evaluation.search import top_indices
from tests.engine.fake_model import FakeModel

needs_fast_bf16 = pytest.mark.skipif(not bf16_is_fast(torch.device("cpu")), reason="this CPU emulates bf16")


@needs_fast_bf16
@pytest.mark.parametrize("which", ["tiny_clip_dir", "tiny_dual_dir"])
def test_bf16_inference_is_the_default_and_stays_close_to_fp32(which, request):
    model = load_model(str(request.getfixturevalue(which)), device="cpu")
    assert model.inference_precision == "bf16"
    pixels = torch.rand(4, 3, 32, 32)
    texts = ["a chest x-ray", "a photo of a cat", "pneumonia"]
    bf16_images, bf16_texts, bf16_print = (
        model.encode_images(pixels),
        model.encode_texts(texts),
        model.fingerprint(),
    )
    model.bf16_inference = False
    assert model.inference_precision == "fp32"
    fp32_images, fp32_texts = model.encode_images(pixels), model.encode_texts(texts)
    assert torch.nn.functional.cosine_similarity(bf16_images, fp32_images).min() > 0.99
    assert torch.nn.functional.cosine_similarity(bf16_texts, fp32_texts).min() > 0.99
    assert bf16_images.dtype == torch.float32
    # The embedding cache must not mix bf16 and fp32 vectors: the fingerprint says which.
    assert model.fingerprint() != bf16_print


def test_bf16_inference_can_be_switched_off_by_environment(tiny_dual_dir, monkeypatch):
    monkeypatch.setenv("CLIPSTUDIO_BF16_INFERENCE", "0")
    model = load_model(str(tiny_dual_dir), device="cpu")
    assert model.inference_precision == "fp32"


@pytest.mark.parametrize("n", [1, 7, 80, 5000])
@pytest.mark.parametrize("top", [0, 1, 10, 100])
def test_top_indices_match_a_stable_full_sort_ties_included(n, top):
    rng = np.random.default_rng(n + top)
    for scores in (rng.standard_normal(n), rng.integers(0, 5, n).astype(np.float32)):
        assert list(top_indices(scores, top)) == list(np.argsort(-scores, kind="stable")[:top])


def test_top_indices_with_nan_scores_match_the_full_sort():
    scores = np.array([np.nan] * 50 + [0.5, 0.1] + [np.nan] * 50)
    assert list(top_indices(scores, 3)) == list(np.argsort(-scores, kind="stable")[:3])


def test_text_cache_encodes_only_new_texts_and_returns_the_same_vectors():
    model = FakeModel()  # records every text it encodes
    cache = TextEmbeddingCache()
    first = cache.encode(model, ["red", "green", "blue"])
    assert model.texts_encoded == ["red", "green", "blue"]
    again = cache.encode(model, ["blue", "red", "cyan", "cyan"])
    assert model.texts_encoded[3:] == ["cyan"]
    np.testing.assert_array_equal(again[:2], first[[2, 0]])
    np.testing.assert_allclose(
        again, l2_normalise(encode_texts(FakeModel(), ["blue", "red", "cyan", "cyan"]))
    )


def test_text_cache_drops_the_least_recently_used_texts():
    model = FakeModel()  # records every text it encodes
    cache = TextEmbeddingCache(max_texts=2)
    cache.encode(model, ["red", "green"])
    cache.encode(model, ["red"])  # red is now the most recent
    cache.encode(model, ["blue"])
    assert len(cache) == 2
    cache.encode(model, ["red", "green"])
    assert model.texts_encoded == ["red", "green", "blue", "green"]


def test_allocator_tuning_is_applied_once_and_can_be_switched_off():
    code = "from clipstudio.engine.runtime.allocator import tune_malloc; print(tune_malloc(), tune_malloc())"
    on = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert on[0] == on[1]
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert on == ["True", "True"]
    env = {"CLIPSTUDIO_MALLOC_TUNING": "0", "PATH": ""}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.split() == ["False", "False"]
