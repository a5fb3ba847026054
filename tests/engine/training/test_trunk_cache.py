"""The frozen image trunk's features are computed once per training image, and the run is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipstudio.engine.events import EpochEnded
from clipstudio.engine.models import load_model
from clipstudio.engine.models.dual_encoder import DualEncoderModel
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.training.methods.contrastive import ContrastiveMethod
from clipstudio.engine.training.trainer import Trainer
from clipstudio.engine.training.trunk_cache import TrunkCache
from tests.engine.training.test_lora import _tiny_vit_bert_module
from tests.fixtures_runs import Recorder


def _count_trunk_rows(monkeypatch, model_class) -> list[int]:
    """Rows that went through ``forward_image_trunk`` (the cache's only caller), batch by batch."""
    seen: list[int] = []
    original = model_class.forward_image_trunk

    def counting(self, pixel_values):
        seen.append(len(pixel_values))
        return original(self, pixel_values)

    monkeypatch.setattr(model_class, "forward_image_trunk", counting)
    return seen


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_model(str(run_dir / "checkpoint_latest"), device="cpu").torch_module.state_dict()


@pytest.mark.parametrize(
    ("model_dir", "model_class", "method"),
    [
        ("tiny_dual_dir", DualEncoderModel, "lora"),  # a CNN image tower: LoRA finds no attention there
        ("tiny_dual_dir", DualEncoderModel, "lock_image"),
        ("tiny_clip_dir", HFClipModel, "lock_image"),
    ],
)
def test_a_fixed_trunk_runs_once_per_image_and_trains_exactly_as_without_the_cache(
    model_dir, model_class, method, class_data, make_cfg, monkeypatch, request
):
    tiny_dual_dir = request.getfixturevalue(model_dir)
    seen = _count_trunk_rows(monkeypatch, model_class)
    cached_events = Recorder()
    cached = Trainer(make_cfg(class_data, tiny_dual_dir, name="cached", method=method, epochs=3,
                              batch_size=4, augmentation="none"), callbacks=[cached_events])  # fmt: skip
    cached_result = cached.fit()
    assert cached.method.trunk_cache is not None and cached.method.trunk_cache.filled.all()
    n_train = cached.method.n_train
    # Three epochs over the training images, each image through the trunk once.
    assert sum(seen) == n_train and len(cached_events.of(EpochEnded)) == 3

    monkeypatch.setattr(ContrastiveMethod, "_trunk_is_fixed", lambda self: False)
    plain_events = Recorder()
    plain = Trainer(make_cfg(class_data, tiny_dual_dir, name="plain", method=method, epochs=3,
                             batch_size=4, augmentation="none"), callbacks=[plain_events])  # fmt: skip
    plain_result = plain.fit()
    assert plain.method.trunk_cache is None and sum(seen) == n_train

    for a, b in zip(cached_events.of(EpochEnded), plain_events.of(EpochEnded), strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
        assert a.val_loss == pytest.approx(b.val_loss, abs=1e-5)
    cached_weights, plain_weights = _weights(cached_result.run_dir), _weights(plain_result.run_dir)
    assert cached_weights.keys() == plain_weights.keys()
    for key in cached_weights:
        assert torch.allclose(cached_weights[key], plain_weights[key], atol=1e-5), key
    start = load_model(str(tiny_dual_dir), device="cpu").torch_module.state_dict()
    moved = "text_projection.weight" if method == "lock_image" else "image_projection.weight"
    assert not torch.equal(start[moved], cached_weights[moved])  # it did train


@pytest.mark.parametrize(
    ("method", "augmentation"),
    [("lora", "minimal"), ("full", "none"), ("lock_text", "none")],
)
def test_no_cache_where_the_trunk_sees_new_pixels_or_trains(method, augmentation, class_data, tiny_dual_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_dual_dir, method=method, epochs=1, augmentation=augmentation)

    trainer = Trainer(cfg)
    trainer.fit()

    assert trainer.method.trunk_cache is None


def test_the_split_towers_compose_to_the_image_embeddings(tiny_clip_dir):
    vit = _tiny_vit_bert_module().eval()
    pixels = torch.randn(3, 3, 8, 8)
    clip = load_model(str(tiny_clip_dir), device="cpu")
    clip.torch_module.eval()
    clip_pixels = torch.randn(2, 3, clip.image_input_spec().size, clip.image_input_spec().size)

    with torch.no_grad():
        assert torch.allclose(vit.image_projection(vit.image_trunk(pixels)), vit.image_features(pixels))
        split = clip.forward_images_from_trunk(clip.forward_image_trunk(clip_pixels))
        assert torch.allclose(split, clip.forward_images(clip_pixels), atol=1e-6)


def test_the_cache_gives_up_when_the_whole_training_set_would_not_fit(monkeypatch):
    monkeypatch.setattr("clipstudio.engine.training.trunk_cache.MAX_BYTES", 1000)
    cache = TrunkCache(n_rows=100)  # 100 rows x 8 floats = 3,200 bytes

    features = cache.features(np.array([0, 1]), torch.zeros(2, 3), lambda p: torch.ones(len(p), 8))

    assert features is None and cache.disabled and not cache.filled.any()


def test_each_distinct_text_of_a_batch_is_encoded_once_and_repeated_per_row(class_data, tiny_dual_dir, make_cfg):
    trainer = Trainer(make_cfg(class_data, tiny_dual_dir, method="full", epochs=1, batch_size=8))
    trainer.fit()
    method = trainer.method
    method.module.eval()  # no dropout: one encoding per text is then the very same tensor
    with method.batches(1, 0) as batches:
        _, batch = next(iter(batches))
    seen: list[int] = []
    original = method.model.forward_texts

    def counting(tokens):
        seen.append(len(tokens["input_ids"]))
        return original(tokens)

    method.model.forward_texts = counting
    with torch.no_grad():
        once = method._batch_texts(batch, batch.tokens)
        every_row = original(batch.tokens)

    distinct = len(np.unique(batch.text_ids))
    assert batch.size == 8 and distinct <= 3  # three classes: one prompt per class in a step
    assert seen == [distinct]
    assert torch.allclose(once, every_row, atol=1e-6)
