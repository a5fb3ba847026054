"""The training step's speed-ups change nothing a user can see: fused AdamW and eager CPU attention."""

from __future__ import annotations

import copy

import pytest
import torch

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.models import load_model
from clipstudio.engine.training.methods.contrastive import training_attention
from clipstudio.engine.training.optimizer import (
    BETAS,
    EPS,
    layer_scales,
    make_optimizer,
    no_decay,
    set_lr,
)
from clipstudio.engine.training.trainer import Trainer


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3))


def _train(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 6, generator=data)
        optimizer.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        optimizer.step()


def test_fused_adamw_gives_the_weights_of_the_plain_loop():
    fused_net, plain_net = _tiny_net(), _tiny_net()
    fused = make_optimizer(list(fused_net.named_parameters()), lr=1e-2, weight_decay=0.1)
    named = list(plain_net.named_parameters())
    plain = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": 0.1},
            {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=BETAS,
        eps=EPS,
        foreach=False,
    )

    _train(fused_net, fused)
    _train(plain_net, plain)

    assert fused.defaults["fused"]  # the CPU has the fused kernel
    for (name, a), b in zip(fused_net.named_parameters(), plain_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_fused_optimizer_state_resumes_into_a_new_optimizer():
    net = _tiny_net()
    optimizer = make_optimizer(list(net.named_parameters()), lr=1e-2, weight_decay=0.1)
    _train(net, optimizer, steps=2)
    twin = _tiny_net()
    twin.load_state_dict(net.state_dict())
    resumed = make_optimizer(list(twin.named_parameters()), lr=1e-2, weight_decay=0.1)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as from a checkpoint file

    _train(net, optimizer, steps=2)
    _train(twin, resumed, steps=2)

    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_cpu_training_attention_matches_sdpa_and_leaves_the_model_as_it_was(tiny_clip_dir):
    model = load_model(str(tiny_clip_dir), device="cpu")
    module = model.torch_module
    module.train()
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = model.tokenize(["a red square", "a green square", "blue", "a photo of a blue square"])

    with torch.no_grad():
        expected = model.forward_images(pixels), model.forward_texts(tokens)
        with training_attention(module, torch.device("cpu")):
            assert module.config._attn_implementation == "eager"
            got = model.forward_images(pixels), model.forward_texts(tokens)

    assert module.config._attn_implementation == "sdpa"
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# --- layer-wise learning-rate decay ---------------------------------------------------------------------

def test_layer_decay_scales_each_tower_from_its_last_layer_down_to_its_embeddings(tiny_clip_dir):
    model = load_model(str(tiny_clip_dir), device="cpu")
    names = [n for n, _ in model.torch_module.named_parameters()]
    layers = model.torch_module.config.vision_config.num_hidden_layers
    scales = layer_scales(names, 0.5)

    def scale(part: str) -> float:
        found = {scales[n] for n in names if part in n}
        assert len(found) == 1, (part, found)
        return found.pop()

    assert scale("vision_model.embeddings.patch_embedding") == 0.5 ** (layers + 1)
    assert scale("vision_model.encoder.layers.0.") == 0.5 ** layers
    assert scale(f"vision_model.encoder.layers.{layers - 1}.") == 0.5
    assert scale("vision_model.post_layernorm") == scale("visual_projection") == scale("logit_scale") == 1.0
    text_layers = model.torch_module.config.text_config.num_hidden_layers
    assert scale("text_model.embeddings.token_embedding") == 0.5 ** (text_layers + 1)
    assert scale("text_model.final_layer_norm") == 1.0


def test_layer_decay_reads_efficientnet_blocks_bert_layers_and_peft_names():
    names = [
        "image_backbone.net._conv_stem.weight", "image_backbone.net._blocks.0._bn1.weight",
        "image_backbone.net._blocks.15._project_conv.weight", "image_backbone.net._conv_head.weight",
        "image_projection.weight", "text_encoder.embeddings.word_embeddings.weight",
        "text_encoder.encoder.layer.0.attention.self.query.weight",
        "text_encoder.encoder.layer.5.output.dense.weight", "text_encoder.pooler.dense.weight",
        "base_model.model.vision_model.encoder.layers.1.self_attn.q_proj.lora_A.default.weight",
        "base_model.model.vision_model.encoder.layers.3.self_attn.v_proj.lora_B.default.weight",
    ]
    scales = layer_scales(names, 0.8)

    expected = {
        "image_backbone.net._conv_stem.weight": 0.8 ** 17, "image_backbone.net._blocks.0._bn1.weight": 0.8 ** 16,
        "image_backbone.net._blocks.15._project_conv.weight": 0.8, "image_backbone.net._conv_head.weight": 1.0,
        "image_projection.weight": 1.0, "text_encoder.embeddings.word_embeddings.weight": 0.8 ** 7,
        "text_encoder.encoder.layer.0.attention.self.query.weight": 0.8 ** 6,
        "text_encoder.encoder.layer.5.output.dense.weight": 0.8, "text_encoder.pooler.dense.weight": 1.0,
        "base_model.model.vision_model.encoder.layers.1.self_attn.q_proj.lora_A.default.weight": 0.8 ** 3,
        "base_model.model.vision_model.encoder.layers.3.self_attn.v_proj.lora_B.default.weight": 0.8,
    }
    assert scales == pytest.approx(expected)
    assert set(layer_scales(names, 1.0).values()) == {1.0}


def test_with_layer_decay_each_group_follows_the_schedule_times_its_multiplier():
    net = torch.nn.Sequential()
    net.add_module("layers", torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(2)]))
    net.add_module("head", torch.nn.Linear(3, 2))
    named = list(net.named_parameters())

    plain = make_optimizer(named, lr=0.1, weight_decay=0.1)
    decayed = make_optimizer(named, lr=0.1, weight_decay=0.1, layer_decay=0.5)
    set_lr(decayed, 0.01)

    assert len(plain.param_groups) == 2 and {g["lr"] for g in plain.param_groups} == {0.1}
    lrs = {id(p): g["lr"] for g in decayed.param_groups for p in g["params"]}
    assert lrs[id(net.head.weight)] == pytest.approx(0.01)
    assert lrs[id(net.layers[1].weight)] == pytest.approx(0.005)
    assert lrs[id(net.layers[0].bias)] == pytest.approx(0.0025)
    assert [g["weight_decay"] for g in decayed.param_groups if any(p is net.head.bias for p in g["params"])] == [0.0]


def test_a_run_with_layer_decay_trains_lower_layers_less_and_logs_the_schedules_rate(
        class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir, method="full", epochs=1, layer_decay=0.1)
    model = load_model(str(tiny_clip_dir), device="cpu")
    start = {n: p.detach().clone() for n, p in model.torch_module.named_parameters()}
    trainer = Trainer(cfg, model=model)
    result = trainer.fit()

    moved = {n: (p.detach() - start[n]).abs().max().item() for n, p in model.torch_module.named_parameters()}
    assert moved["visual_projection.weight"] > 10 * moved["vision_model.encoder.layers.0.self_attn.q_proj.weight"] > 0
    scales = {g.get("lr_scale") for g in trainer.optimizer.param_groups}
    assert 1.0 in scales and min(scales) < 0.01
    logged = result.history["lr"][-1]  # the schedule's rate; each group runs at it times its multiplier
    assert all(g["lr"] == pytest.approx(logged * g["lr_scale"]) for g in trainer.optimizer.param_groups)


def test_layer_decay_outside_zero_to_one_is_refused():
    for value in (0.0, 1.5):
        with pytest.raises(ConfigError, match="layer_decay"):
            TrainConfig(layer_decay=value).validate()
