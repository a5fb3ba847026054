"""LoRA: adapters on attention layers only, merged into a plain saved model."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from clipstudio.engine.models import load_model
from clipstudio.engine.training.trainer import Trainer


def _saved_keys(folder) -> list[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return list(f.keys())


@pytest.mark.slow
def test_lora_export_is_merged_and_matches_the_adapted_model(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir, method="lora", epochs=1)
    cfg.lora.rank = 4

    trainer = Trainer(cfg)
    result = trainer.fit()

    assert result.status == "completed"
    checkpoint = result.run_dir / "checkpoint_latest"
    keys = _saved_keys(checkpoint)
    assert keys and not any("lora_" in k or "base_layer" in k for k in keys)
    exported = load_model(str(checkpoint), device="cpu")
    adapted = trainer.method.model  # the training model, adapters still separate
    # Compared in fp32: bf16 inference (the default) rounds merged and separate weights differently.
    exported.bf16_inference = adapted.bf16_inference = False
    texts = ["a photo of red.", "a photo of blue."]
    assert torch.allclose(exported.encode_texts(texts), adapted.encode_texts(texts), atol=1e-5)
    original = load_model(str(tiny_clip_dir), device="cpu")
    assert not torch.allclose(exported.encode_texts(texts), original.encode_texts(texts), atol=1e-5)


def test_lora_freezes_a_tower_without_attention_except_its_projection(class_data, tiny_dual_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_dual_dir, method="lora", epochs=1)

    result = Trainer(cfg).fit()

    before = load_model(str(tiny_dual_dir), device="cpu").torch_module.state_dict()
    after = load_model(str(result.run_dir / "checkpoint_latest"), device="cpu").torch_module.state_dict()
    backbone = [k for k in before if k.startswith("image_backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before["image_projection.weight"], after["image_projection.weight"])
    attention = [k for k in before if "attention.self.query.weight" in k]
    assert attention and all(not torch.equal(before[k], after[k]) for k in attention)
    # The feed-forward layers carry no adapter and stay as they were.
    dense = [k for k in before if "intermediate.dense.weight" in k]
    assert all(torch.equal(before[k], after[k]) for k in dense)
