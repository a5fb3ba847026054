"""WiSE-FT: interpolating a run's weights between its starting model and its fine-tuned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipstudio.engine.data import load_dataset
from clipstudio.engine.errors import ConfigError, DataError, ModelError
from clipstudio.engine.evaluation.before_after import compare_run
from clipstudio.engine.evaluation.evaluate import ZEROSHOT
from clipstudio.engine.evaluation.wise import (
    WiseInterpolator,
    interpolate_state_dicts,
    wise_model,
    wise_sweep,
)
from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot
from clipstudio.engine.models import load_model
from clipstudio.engine.prompts import run_prompt_set

TEXTS = ["a blue square", "a red square", "an x-ray of the chest"]


@pytest.mark.slow
def test_alpha_zero_is_the_start_one_the_fine_tuned_and_half_the_average(trained):
    start = load_model(str(trained["start"]), device="cpu")
    tuned = load_model(str(trained["full"]), device="cpu")
    start_sd, tuned_sd = start.torch_module.state_dict(), tuned.torch_module.state_dict()
    assert not torch.equal(start.encode_texts(TEXTS), tuned.encode_texts(TEXTS))  # training moved the weights
    assert torch.equal(wise_model(trained["full"], 0.0, device="cpu").encode_texts(TEXTS), start.encode_texts(TEXTS))

    models = WiseInterpolator(trained["full"], device="cpu")
    mid = models.model_at(0.5).torch_module.state_dict()
    for name, value in tuned_sd.items():
        if value.is_floating_point():
            torch.testing.assert_close(mid[name], (start_sd[name] + value) / 2)
        else:
            assert torch.equal(mid[name], value)  # integer buffers come from the fine-tuned model
    # After an interpolation the working model is restored exactly for alpha 1.
    assert torch.equal(models.model_at(1.0).encode_texts(TEXTS), tuned.encode_texts(TEXTS))


@pytest.mark.slow
def test_sweep_alpha_zero_and_one_reproduce_start_and_fine_tuned_metrics(trained):
    dataset = load_dataset(trained["data"])
    prompts = run_prompt_set(trained["full"])
    rows = wise_sweep(trained["full"], dataset, alphas=(0.0, 1.0), device="cpu")
    assert [row["alpha"] for row in rows] == [0.0, 1.0]
    start = evaluate_zero_shot(load_model(str(trained["start"]), device="cpu"), dataset, prompts)
    tuned = evaluate_zero_shot(load_model(str(trained["full"]), device="cpu"), dataset, prompts)
    assert (rows[0]["accuracy"], rows[0]["balanced_accuracy"]) == (start.accuracy, start.balanced_accuracy)
    assert (rows[1]["accuracy"], rows[1]["balanced_accuracy"]) == (tuned.accuracy, tuned.balanced_accuracy)
    assert rows[0]["n"] == len(dataset)


@pytest.mark.slow
def test_linear_probe_wise_moves_the_head_from_zero_shot_to_trained(trained):
    dataset = load_dataset(trained["data"])
    rows = wise_sweep(trained["probe"], dataset, alphas=(0.0, 0.5, 1.0), device="cpu")
    start = evaluate_zero_shot(load_model(str(trained["start"]), device="cpu"), dataset, run_prompt_set(trained["probe"]))
    assert rows[0]["accuracy"] == start.accuracy
    assert rows[2]["accuracy"] == 1.0 > rows[0]["accuracy"]  # colours are easy for a trained head
    half = wise_model(trained["probe"], 0.5, device="cpu")
    full = wise_model(trained["probe"], 1.0, device="cpu")
    names = ["blue", "green", "red"]
    assert not np.allclose(half.class_weights(names).rows, full.class_weights(names).rows)


def test_a_linear_probe_run_only_scores_the_classes_it_was_trained_on(trained, tmp_path, make_class_folders):
    models = WiseInterpolator(trained["probe"], device="cpu")
    assert models.evaluation_kind_of(load_dataset(trained["data"])) == ZEROSHOT
    other = load_dataset(make_class_folders(tmp_path / "other", {"blue": 2, "cat": 2}))
    with pytest.raises(DataError, match="only knows its own"):
        models.evaluation_kind_of(other)
    # Both the WiSE-FT sweep and the before/after comparison refuse it, rather than score with prompts.
    with pytest.raises(DataError, match="only knows its own"):
        wise_sweep(trained["probe"], other, alphas=(1.0,), device="cpu")
    with pytest.raises(DataError, match="only knows its own"):
        compare_run(trained["probe"], other, device="cpu")


def test_a_linear_probe_run_refuses_image_caption_pairs(trained, tmp_path, make_clip_finetune):
    pairs = load_dataset(make_clip_finetune(tmp_path / "pairs", {"train": 3}))
    with pytest.raises(DataError, match="only be evaluated on class data"):
        wise_sweep(trained["probe"], pairs, alphas=(1.0,), device="cpu")
    assert WiseInterpolator(trained["full"], device="cpu").evaluation_kind_of(pairs) != ZEROSHOT


def test_alpha_outside_zero_to_one_is_rejected(trained):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        wise_model(trained["full"], 1.5)


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


@pytest.mark.slow
def test_wise_ft_of_a_tip_adapter_run_weighs_its_cache_from_zero_shot_to_the_runs(trained):
    dataset = load_dataset(trained["data"])
    rows = wise_sweep(trained["tip"], dataset, alphas=(0.0, 1.0), device="cpu")
    start = evaluate_zero_shot(load_model(str(trained["start"]), device="cpu"), dataset, run_prompt_set(trained["tip"]))
    tuned = evaluate_zero_shot(load_model(str(trained["tip"]), device="cpu"), dataset, run_prompt_set(trained["tip"]))
    assert rows[0]["accuracy"] == start.accuracy and rows[1]["accuracy"] == tuned.accuracy > start.accuracy
    half, full = wise_model(trained["tip"], 0.5, device="cpu"), wise_model(trained["tip"], 1.0, device="cpu")
    assert full.cache.alpha > 0 and half.cache.alpha == pytest.approx(0.5 * full.cache.alpha)
    np.testing.assert_array_equal(half.cache.keys, full.cache.keys)
