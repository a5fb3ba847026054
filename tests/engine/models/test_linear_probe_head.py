"""A linear-probe model: the frozen model's encoders plus the trained class head, saved beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from clipstudio.engine.class_weights import ClassWeights, mix_logits
from clipstudio.engine.errors import ModelError
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.linear_probe_head import (
    HEAD_INFO,
    HEAD_WEIGHTS,
    LinearProbeModel,
    load_head,
    save_head,
)


def test_the_head_round_trips_and_a_mismatched_one_is_refused(tmp_path):
    weight, bias = torch.randn(3, 4), torch.randn(3)
    save_head(tmp_path, weight, bias, ["a", "b", "c"])
    head, names = load_head(tmp_path)
    assert names == ["a", "b", "c"] and head.scale == 1.0
    np.testing.assert_array_equal(head.rows, weight.numpy())
    np.testing.assert_array_equal(head.bias, bias.numpy())
    save_head(tmp_path, weight, bias, ["a", "b"])
    with pytest.raises(ModelError, match="does not match its class names"):
        load_head(tmp_path)


def test_a_version_1_cosine_head_loads_as_the_same_logits(tmp_path):
    weight = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    save_file({"weight": weight}, str(tmp_path / HEAD_WEIGHTS))
    (tmp_path / HEAD_INFO).write_text(json.dumps({"class_names": ["a", "b"], "logit_scale": 100.0}))
    head, _ = load_head(tmp_path)
    images = np.array([[2.0, 0.0], [1.0, 1.0]])
    # Version 1: logit_scale x cosine of the image with each normalised row.
    np.testing.assert_allclose(head.logits(images), [[100.0, 0.0], [70.7107, 70.7107]], atol=1e-3)
    np.testing.assert_allclose(head.as_affine().logits(images), head.logits(images), atol=1e-4)


def test_mixing_two_heads_mixes_their_logits():
    rng = np.random.default_rng(0)
    cosine = ClassWeights(rng.normal(size=(3, 5)).astype(np.float32), 50.0)
    affine = ClassWeights.affine(rng.normal(size=(3, 5)), rng.normal(size=3))
    images = rng.normal(size=(4, 5))
    mixed = mix_logits(cosine, affine, 0.25)
    np.testing.assert_allclose(
        mixed.logits(images), 0.75 * cosine.logits(images) + 0.25 * affine.logits(images), rtol=1e-5, atol=1e-4
    )


def test_a_probe_run_loads_as_its_base_model_plus_its_head(trained):
    model = load_run_model(trained["probe"], device="cpu")
    assert isinstance(model, LinearProbeModel)
    base = load_model(str(trained["start"]), device="cpu")
    assert model.fingerprint() == base.fingerprint()  # image embeddings are the frozen model's
    head = model.class_weights(["red", "blue"])
    assert head.rows.shape == (2, model.embed_dim) and head.bias.shape == (2,)
    full = model.class_weights(["blue", "green", "red"])
    np.testing.assert_array_equal(head.rows, full.rows[[2, 0]])  # in the order asked for
    assert model.class_weights(["red", "purple"]) is None  # a class the probe never saw
