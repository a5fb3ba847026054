"""Linear probe: starts exactly at zero-shot, trains a class head, loads back from the run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.data.readers import load_dataset
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, evaluate_zero_shot
from clipstudio.engine.events import EvalEnded
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.training.trainer import Trainer


@pytest.mark.slow
def test_epoch_zero_equals_zero_shot_and_the_head_loads_back(class_data, tiny_clip_dir, make_cfg, recorder):
    cfg = make_cfg(class_data, tiny_clip_dir, method="linear_probe", epochs=3, save_best=True)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    initial = recorder.of(EvalEnded)[0]
    assert initial.epoch == 0
    # Zero-shot on the same validation images with the same prompts, computed independently.
    model = load_model(str(tiny_clip_dir), device="cpu")
    dataset = load_dataset(class_data)
    val_paths = set(json.loads((result.run_dir / "splits.json").read_text(encoding="utf-8"))["val"])
    val = dataset.subset([i for i, s in enumerate(dataset.samples) if str(s.path) in val_paths])
    zero_shot = evaluate_zero_shot(model, val, PromptSet())
    metrics = initial.as_dict()
    assert metrics["val_acc"] == pytest.approx(zero_shot.accuracy)
    assert metrics["val_balanced_acc"] == pytest.approx(zero_shot.balanced_accuracy)

    probe = load_run_model(result.run_dir, device="cpu")
    assert isinstance(probe, LinearProbeModel)
    head = probe.class_embeddings(dataset.class_names)
    assert head.shape == (3, model.embed_dim)
    assert np.allclose(np.linalg.norm(head, axis=1), 1.0, atol=1e-5)
    assert probe.class_embeddings(["unknown"]) is None
    # Training moved the class vectors away from the prompt embeddings it started from.
    start = class_text_embeddings(model, dataset.class_names, PromptSet())
    assert not np.allclose(head, start, atol=1e-4)
    # Encoding is the frozen model's.
    assert np.allclose(probe.encode_texts(["red"]).numpy(), model.encode_texts(["red"]).numpy(), atol=1e-6)
