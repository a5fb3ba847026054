"""The training step's speed-ups change nothing a user can see: fused AdamW and eager CPU attention."""

from __future__ import annotations

import copy

import torch

from clipstudio.engine.models import load_model
from clipstudio.engine.training.methods.contrastive import training_attention
from clipstudio.engine.training.optimizer import BETAS, EPS, make_optimizer, no_decay


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
