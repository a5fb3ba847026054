"""Inference precision of the torch models: bf16 by default where the CPU does it fast, same answers as fp32."""

from __future__ import annotations

import pytest
import torch

from clipstudio.engine.models import load_model
from clipstudio.engine.runtime.precision import bf16_is_fast

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
