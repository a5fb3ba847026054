"""Stop inside a training step: a CPU step of a CLIP-sized model takes seconds, and Stop must act within 2.

``interruptible(module, should_stop)`` makes the model's layers (the members of every
``nn.ModuleList`` and ``nn.Sequential``: transformer layers, CNN blocks) check ``should_stop`` as the step's forward pass
enters them, and again as the backward pass reaches their outputs (a gradient hook on the output
tensor, not a module backward hook: those wrap outputs and break in-place activations). When it
answers True they raise ``StepCancelled``; the Trainer then drops the half-computed gradients, puts
the random state back to the step's start and saves ``checkpoint_latest`` as it stood after the last
whole step, so a resume redoes that step exactly. The hooks exist only inside the ``with`` block:
validation and inference never see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from clipstudio.engine.events import ShouldStop


class StepCancelled(Exception):
    """The user asked to stop while a training step was running; the step is abandoned."""


def checkpoint_layers(module: nn.Module) -> list[nn.Module]:
    """The modules that check for a stop: members of every ModuleList/Sequential, else the top-level children."""
    containers = (nn.ModuleList, nn.Sequential)
    layers = [layer for m in module.modules() if isinstance(m, containers) for layer in m]
    return layers or list(module.children())


def _first_tensor(output: object) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None


@contextmanager
def interruptible(module: nn.Module | None, should_stop: ShouldStop) -> Iterator[None]:
    """Within the block, ``module``'s forward and backward passes raise StepCancelled once ``should_stop()``."""
    if module is None:
        yield
        return

    def check(*_args) -> None:
        if should_stop():
            raise StepCancelled

    def before(_module, _inputs) -> None:
        check()

    def after(_module, _inputs, output) -> None:
        tensor = _first_tensor(output)
        if tensor is not None and tensor.requires_grad:
            tensor.register_hook(check)

    handles = []
    try:
        for layer in checkpoint_layers(module):
            handles.append(layer.register_forward_pre_hook(before))
            handles.append(layer.register_forward_hook(after))
        yield
    finally:
        for handle in handles:
            handle.remove()
