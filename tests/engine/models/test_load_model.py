"""load_model on folders and ids: tiny HF CLIP and tiny dual encoder, round trips, refusals, fingerprints."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models import load_model
from tests.fixtures_models import CAT_IDS

KINDS = ["tiny_clip_dir", "tiny_dual_dir"]


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.RandomState(0)
    sizes = [(40, 50), (64, 32), (33, 33), (20, 90)]
    return [Image.fromarray((rng.rand(h, w, 3) * 255).astype("uint8")) for h, w in sizes[:n]]


@pytest.fixture(params=KINDS)
def model_dir(request):
    return request.getfixturevalue(request.param)


def test_tiny_clip_tokenizer_matches_openai_ids(tiny_clip_dir):
    model = load_model(str(tiny_clip_dir), device="cpu")
    assert model.tokenize(["a photo of a cat"])["input_ids"][0].tolist() == CAT_IDS


def test_embeddings_are_normalised_float32_cpu_and_deterministic(model_dir):
    model = load_model(str(model_dir), device="cpu")
    pixels = model.preprocess(_images(3))
    assert pixels.shape == (3, 3, 32, 32)
    images = model.encode_images(pixels)
    texts = model.encode_texts(["a photo of a cat", "an x-ray of a chest", "x"])
    for emb in (images, texts):
        assert emb.shape == (3, model.embed_dim)
        assert emb.dtype == torch.float32 and emb.device.type == "cpu"
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert torch.equal(images, model.encode_images(pixels))
    assert torch.equal(texts, model.encode_texts(["a photo of a cat", "an x-ray of a chest", "x"]))
    assert model.encode_texts([]).shape == (0, model.embed_dim)


def test_text_embedding_does_not_depend_on_batch_padding(model_dir):
    model = load_model(str(model_dir), device="cpu")
    alone = model.encode_texts(["a photo of a cat"])
    padded = model.encode_texts(["a photo of a cat", "a much longer caption with many more words in it"])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_long_texts_are_counted_untruncated_and_encoded_truncated(model_dir):
    model = load_model(str(model_dir), device="cpu")
    long_text = "opacity in the left lower lobe " * 40
    count = model.count_tokens([long_text, "a photo of a cat"])
    assert count[0] > model.max_text_tokens and count[1] == 7
    assert model.encode_texts([long_text]).shape == (1, model.embed_dim)


def test_properties_match_the_config(tiny_clip_dir, tiny_dual_dir):
    clip = load_model(str(tiny_clip_dir), device="cpu")
    assert (clip.kind, clip.embed_dim, clip.max_text_tokens) == ("hf_clip", 16, 77)
    assert clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    dual = load_model(str(tiny_dual_dir), device="cpu")
    assert (dual.kind, dual.embed_dim, dual.max_text_tokens) == ("dual_encoder", 16, 64)
    assert dual.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert clip.device == dual.device == torch.device("cpu")


def test_save_then_load_gives_identical_embeddings_and_fingerprint(model_dir, tmp_path):
    model = load_model(str(model_dir), device="cpu")
    pixels = model.preprocess(_images(2))
    saved = model.save(tmp_path / "saved")
    assert (saved / "clipstudio_model.json").is_file() and (saved / "model.safetensors").is_file()
    assert not list(saved.rglob("*.bin"))
    again = load_model(str(saved), device="cpu")
    assert type(again) is type(model)
    assert torch.equal(again.encode_images(pixels), model.encode_images(pixels))
    assert torch.equal(again.encode_texts(["a photo of a cat"]), model.encode_texts(["a photo of a cat"]))
    assert again.fingerprint() == model.fingerprint()


def test_fingerprint_changes_when_weights_change(model_dir):
    model = load_model(str(model_dir), device="cpu")
    before = model.fingerprint()
    assert len(before) == 64 and model.fingerprint() == before
    with torch.no_grad():
        next(model.torch_module.parameters()).add_(0.01)
    assert model.fingerprint() != before


def test_hf_and_dual_fingerprints_differ(tiny_clip_dir, tiny_dual_dir):
    assert load_model(str(tiny_clip_dir)).fingerprint() != load_model(str(tiny_dual_dir)).fingerprint()


def test_training_hooks_give_gradients_to_both_towers_and_temperature(model_dir):
    model = load_model(str(model_dir), device="cpu")
    model.torch_module.train()
    images = model.forward_images(model.preprocess(_images(2)))
    texts = model.forward_texts(model.tokenize(["a photo of a cat", "a photo of a dog"]))
    logits = model.logit_scale_tensor() * images @ texts.T
    torch.nn.functional.cross_entropy(logits, torch.arange(2)).backward()
    grads = {
        n for n, p in model.torch_module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert any("logit_scale" in n for n in grads)
    assert any(n.startswith(("vision_model", "image_backbone")) for n in grads)
    assert any(n.startswith(("text_model", "text_encoder")) for n in grads)


def test_encoding_restores_training_mode(model_dir):
    model = load_model(str(model_dir), device="cpu")
    model.torch_module.train()
    model.encode_texts(["a"])
    assert model.torch_module.training


def test_hub_id_offline_fails_fast_naming_builtin_and_local_folder():
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_model("clipstudio-tests/no-such-clip-model", device="cpu")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "clipstudio-tests/no-such-clip-model" in message
    assert "--model builtin" in message and "local model folder" in message


def test_hub_id_without_network_fails_fast_even_when_not_in_offline_mode(monkeypatch):
    import clipstudio.engine.models.hub as hub

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    start = time.monotonic()
    with pytest.raises(ModelError, match="can't be reached.*--model builtin"):
        load_model("clipstudio-tests/no-such-clip-model", device="cpu")
    assert time.monotonic() - start < 10


def test_folder_with_only_pytorch_bin_is_refused(tiny_clip_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not unpickled, ever")
    with pytest.raises(ModelError, match="pytorch_model.bin.*safetensors"):
        load_model(str(folder), device="cpu")


def test_folder_that_is_not_a_model_is_refused_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError) as err:
        load_model(str(tmp_path), device="cpu")
    assert str(tmp_path) in str(err.value) and "clipstudio_model.json" in str(err.value)


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("config.json", '{"model_type": "bert"}', "'bert' model, not CLIP"),
        ("config.json", "{not json", "not a valid Hugging Face config"),
        ("clipstudio_model.json", '{"kind": "mystery"}', "unknown kind 'mystery'"),
        ("clipstudio_model.json", "garbage", "Can't read"),
        ("clipstudio_model.json", '{"kind": "dual_encoder"}', "incomplete or invalid"),
    ],
)
def test_broken_model_folders_are_refused_with_a_clear_message(tmp_path, filename, content, match):
    (tmp_path / filename).write_text(content)
    with pytest.raises(ModelError, match=match):
        load_model(str(tmp_path), device="cpu")


def test_dual_encoder_with_corrupt_weights_is_refused(tiny_dual_dir, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_dual_dir, folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError):
        load_model(str(folder), device="cpu")


def test_spec_that_is_neither_folder_nor_id_is_refused():
    with pytest.raises(ModelError, match="neither a folder nor a Hugging Face id"):
        load_model("no such folder here", device="cpu")
