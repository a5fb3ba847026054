"""LoRA: adapters on attention layers only, merged into a plain saved model."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from clipstudio.engine.models import load_model
from clipstudio.engine.models.vit_hf_text import ViTHFTextModule, build_towers
from clipstudio.engine.training.methods.lora import lora_target_names
from clipstudio.engine.training.presets import QKV_TARGETS
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


def _tiny_vit_bert_module() -> ViTHFTextModule:
    """BiomedCLIP's shape in miniature: a transformers ViT image tower and a BERT text tower."""
    from transformers import BertConfig, ViTConfig

    sizes = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24)
    vit = ViTConfig(image_size=8, patch_size=4, layer_norm_eps=1e-6, **sizes)
    image, text = build_towers(vit, BertConfig(vocab_size=30, max_position_embeddings=16, **sizes), "cls")
    return ViTHFTextModule(image, text, embed_dim=8)


def test_default_lora_adapts_a_vit_towers_whole_attention_and_the_clip_lora_preset_only_qkv():
    module = _tiny_vit_bert_module()

    default = lora_target_names(module)
    preset = lora_target_names(module, QKV_TARGETS)

    def endings(names: list[str], tower: str) -> set[str]:
        return {n.rsplit(".", 1)[-1] for n in names if n.startswith(tower)}

    # the image tower's attention gets the same adapters as the text tower's: q, k, v and the output
    assert endings(default, "image_tower.") == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert sum(n.endswith("attention.output.dense") for n in default) == 2
    assert endings(preset, "image_tower.") == {"q_proj", "k_proj", "v_proj"}
    assert endings(preset, "text_tower.") == {"query", "key", "value"}
    assert not any(".mlp." in n or "intermediate" in n for n in default)
