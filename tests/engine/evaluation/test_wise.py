"""WiSE-FT: interpolating a run's weights between its starting model and its fine-tuned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot
from clipstudio.engine.models import load_model
from clipstudio.engine.training.trainer import Trainer
from clipstudio.engine.evaluation.wise import (
    WiseInterpolator,
    interpolate_state_dicts,
    run_prompt_set,
    wise_model,
    wise_sweep,
)
from tests.fixtures_data import _PALETTE, write_png

TEXTS = ["a blue square", "a red square", "an x-ray of the chest"]


def _colour_classes(root, per_class=6):
    for c, name in enumerate(["blue", "green", "red"]):
        r, g, b = _PALETTE[c]
        for i in range(per_class):
            shade = 10 * (i % 5)
            write_png(root / name / f"{name}_{i}.png", (r - shade, g - shade, b - shade))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip_dir):
    """A full fine-tuning run and a linear-probe run of the tiny CLIP on three colour classes."""
    root = tmp_path_factory.mktemp("wise")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSTUDIO_HOME", str(root / "home"))
        mp.setenv("CLIPSTUDIO_CACHE_DIR", str(root / "home" / "cache"))
        data = _colour_classes(root / "data")
        common = dict(data=DataConfig(path=str(data)), model=ModelConfig(spec=str(tiny_clip_dir), device="cpu"))
        full = TrainConfig(**common, output=str(root / "full"), epochs=1, batch_size=6, learning_rate=1e-3,
                           warmup_steps=0, amp=False)
        probe = TrainConfig(**common, output=str(root / "probe"), method="linear_probe", epochs=4,
                            batch_size=8, learning_rate=0.2, warmup_steps=0, weight_decay=0.0)
        for cfg in (full, probe):
            assert Trainer(cfg).fit().status == "completed"
    return {"data": data, "full": root / "full", "probe": root / "probe", "start": tiny_clip_dir}


def test_alpha_zero_is_the_start_one_the_fine_tuned_and_half_the_average(runs):
    start = load_model(str(runs["start"]), device="cpu")
    tuned = load_model(str(runs["full"]), device="cpu")
    start_sd, tuned_sd = start.torch_module.state_dict(), tuned.torch_module.state_dict()
    assert not torch.equal(start.encode_texts(TEXTS), tuned.encode_texts(TEXTS))  # training moved the weights
    assert torch.equal(wise_model(runs["full"], 0.0, device="cpu").encode_texts(TEXTS), start.encode_texts(TEXTS))

    models = WiseInterpolator(runs["full"], device="cpu")
    mid = models.model_at(0.5).torch_module.state_dict()
    for name, value in tuned_sd.items():
        if value.is_floating_point():
            torch.testing.assert_close(mid[name], (start_sd[name] + value) / 2)
        else:
            assert torch.equal(mid[name], value)  # integer buffers come from the fine-tuned model
    # After an interpolation the working model is restored exactly for alpha 1.
    assert torch.equal(models.model_at(1.0).encode_texts(TEXTS), tuned.encode_texts(TEXTS))


def test_sweep_alpha_zero_and_one_reproduce_start_and_fine_tuned_metrics(runs):
    dataset = load_dataset(runs["data"])
    prompts = run_prompt_set(runs["full"])
    rows = wise_sweep(runs["full"], dataset, alphas=(0.0, 1.0), device="cpu")
    assert [row["alpha"] for row in rows] == [0.0, 1.0]
    start = evaluate_zero_shot(load_model(str(runs["start"]), device="cpu"), dataset, prompts)
    tuned = evaluate_zero_shot(load_model(str(runs["full"]), device="cpu"), dataset, prompts)
    assert (rows[0]["accuracy"], rows[0]["balanced_accuracy"]) == (start.accuracy, start.balanced_accuracy)
    assert (rows[1]["accuracy"], rows[1]["balanced_accuracy"]) == (tuned.accuracy, tuned.balanced_accuracy)
    assert rows[0]["n"] == len(dataset)


def test_linear_probe_wise_moves_the_head_from_zero_shot_to_trained(runs):
    dataset = load_dataset(runs["data"])
    rows = wise_sweep(runs["probe"], dataset, alphas=(0.0, 0.5, 1.0), device="cpu")
    start = evaluate_zero_shot(load_model(str(runs["start"]), device="cpu"), dataset, run_prompt_set(runs["probe"]))
    assert rows[0]["accuracy"] == start.accuracy
    assert rows[2]["accuracy"] == 1.0 > rows[0]["accuracy"]  # colours are easy for a trained head
    half = wise_model(runs["probe"], 0.5, device="cpu")
    full = wise_model(runs["probe"], 1.0, device="cpu")
    names = ["blue", "green", "red"]
    assert not np.allclose(half.class_embeddings(names), full.class_embeddings(names))


def test_alpha_outside_zero_to_one_is_rejected(runs):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        wise_model(runs["full"], 1.5)


def test_different_architectures_are_a_model_error_naming_the_tensor():
    a = {"w": torch.zeros(2, 3), "step": torch.tensor(1)}
    b = {"w": torch.zeros(3, 3), "step": torch.tensor(2)}
    with pytest.raises(ModelError, match="'?w'?"):
        interpolate_state_dicts(a, b, 0.5)
    with pytest.raises(ModelError, match="extra"):
        interpolate_state_dicts({"w": torch.zeros(2)}, {"w": torch.zeros(2), "extra": torch.zeros(1)}, 0.5)
    mixed = interpolate_state_dicts({"w": torch.zeros(2), "n": torch.tensor(1)},
                                    {"w": torch.ones(2), "n": torch.tensor(7)}, 0.25)
    assert torch.equal(mixed["w"], torch.full((2,), 0.25)) and int(mixed["n"]) == 7
