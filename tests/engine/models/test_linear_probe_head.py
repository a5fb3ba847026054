"""A linear-probe model: the frozen model's encoders plus the trained class head, saved beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.linear_probe_head import LinearProbeModel, load_head, save_head


def test_the_head_round_trips_and_a_mismatched_one_is_refused(tmp_path):
    weight = torch.randn(3, 4)
    save_head(tmp_path, weight, ["a", "b", "c"], 100.0)
    loaded, names, scale = load_head(tmp_path)
    assert torch.equal(loaded, weight) and names == ["a", "b", "c"] and scale == 100.0
    save_head(tmp_path, weight, ["a", "b"], 100.0)
    with pytest.raises(ModelError, match="does not match its class names"):
        load_head(tmp_path)


def test_a_probe_run_loads_as_its_base_model_plus_normalised_head_rows(trained):
    model = load_run_model(trained["probe"], device="cpu")
    assert isinstance(model, LinearProbeModel)
    base = load_model(str(trained["start"]), device="cpu")
    assert model.fingerprint() == base.fingerprint()  # image embeddings are the frozen model's
    rows = model.class_embeddings(["red", "blue"])
    assert rows.shape == (2, model.embed_dim)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert model.class_embeddings(["red", "purple"]) is None  # a class the probe never saw
