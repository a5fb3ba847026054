"""The CLIP-LoRA preset: the paper's fixed settings, and which layers it adapts in each kind of model."""

from __future__ import annotations

import pytest

from clipstudio.engine.config import DataConfig, TrainConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.models import load_model
from clipstudio.engine.training.methods.lora import lora_target_names
from clipstudio.engine.training.optimizer import cosine_lr
from clipstudio.engine.training.presets import CLIP_LORA, apply_preset


def test_clip_lora_sets_exactly_the_published_values():
    cfg = apply_preset(TrainConfig(data=DataConfig(shots_per_class=4)), CLIP_LORA)

    assert cfg.method == "lora"
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout) == (2, 1.0, 0.25)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.batch_size) == (2e-4, 1e-2, 32)
    assert cfg.steps == 500 * 4
    # Cosine from the first step on (no warm-up), down to zero at the last.
    assert cfg.warmup_steps == 0
    assert cosine_lr(0, base_lr=cfg.learning_rate, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps) == 2e-4
    assert cosine_lr(cfg.steps, base_lr=2e-4, total_steps=cfg.steps, warmup_steps=0) == pytest.approx(0.0)
    cfg.validate()


def test_clip_lora_without_few_shot_takes_the_16_shot_budget_and_typed_settings_win():
    base = TrainConfig(epochs=3)
    base.lora.rank = 8

    cfg = apply_preset(base, CLIP_LORA, keep={"lora.rank"})

    assert cfg.steps == 500 * 16
    assert cfg.lora.rank == 8  # typed: kept
    assert cfg.epochs == 3  # not the preset's: how often the run validates
    assert base.method == "full" and base.steps is None  # the caller's config is untouched


def test_an_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="clip-lora"):
        apply_preset(TrainConfig(), "clip-lorra")


def test_clip_lora_adapts_q_k_v_of_every_layer_of_both_clip_towers(tiny_clip_dir):
    cfg = apply_preset(TrainConfig(), CLIP_LORA)
    module = load_model(str(tiny_clip_dir), device="cpu").torch_module

    names = lora_target_names(module, cfg.lora.target_modules)

    for tower in ("vision_model", "text_model"):
        for layer in (0, 1):  # the tiny CLIP has 2 layers per tower
            for projection in ("q_proj", "k_proj", "v_proj"):
                assert f"{tower}.encoder.layers.{layer}.self_attn.{projection}" in names
    assert len(names) == 2 * 2 * 3 and not any(n.endswith("out_proj") for n in names)


def test_clip_lora_adapts_only_the_text_tower_of_a_cnn_image_model(tiny_dual_dir):
    cfg = apply_preset(TrainConfig(), CLIP_LORA)
    module = load_model(str(tiny_dual_dir), device="cpu").torch_module

    names = lora_target_names(module, cfg.lora.target_modules)

    assert names and all(n.startswith("text_encoder.") for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == {"query", "key", "value"}
