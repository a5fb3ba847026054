"""LoRA fine-tuning: low-rank adapters on the attention projections, merged back for export.

Adapters go on the attention q/k/v and output projections of every tower that has them (HF CLIP:
``q_proj``/``k_proj``/``v_proj``/``out_proj``; transformers ViT, the image tower of BiomedCLIP-style
models: ``q_proj``/``k_proj``/``v_proj``/``o_proj``; BERT/MiniLM: ``query``/``key``/``value`` and
``attention.output.dense``). A tower without attention (EfficientNet) gets none and stays frozen
except its projection. Besides the adapters, the two projection heads and the temperature train.
The exported model has the adapters merged into its weights (``merge_and_unload``), so it is a
plain model of its usual kind and loads with ``load_model``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from clipstudio.engine.config import LoraConfig
from clipstudio.engine.errors import ConfigError

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel

# Module-name endings adapted when LoraConfig.target_modules is None.
AUTO_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",  # HF CLIP (both towers)
    # transformers ViT (BiomedCLIP's image tower) names its output projection o_proj: the default adapts
    # the whole attention block in every tower alike; the CLIP-LoRA preset keeps to q/k/v, as the paper.
    "o_proj",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",  # BERT / MiniLM
)
# Parameters that train besides the adapters: the projection heads and the temperature.
_ALSO_TRAINED = ("projection", "logit_scale")


def lora_target_names(module: nn.Module, targets: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Full names of the ``nn.Linear`` layers whose name is, or ends with ``.<target>``."""
    wanted = tuple(targets) if targets else AUTO_TARGETS
    names = []
    for name, layer in module.named_modules():
        if not isinstance(layer, nn.Linear):
            continue
        if any(name == t or name.endswith(f".{t}") for t in wanted):
            names.append(name)
    return names


@dataclass
class LoraAdapters:
    """The adapters injected into a model's module, with what is needed to export a merged copy."""

    tuner: object  # peft LoraModel wrapping (and mutating) model.torch_module
    target_names: list[str]

    def trainable_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Trainable parameters and all buffers of the adapted module: what a resume needs besides the start model."""
        params = {n: p for n, p in module.named_parameters() if p.requires_grad}
        return {**params, **dict(module.named_buffers())}


def apply_lora(model: ImageTextModel, cfg: LoraConfig) -> LoraAdapters:
    """Inject LoRA adapters into ``model.torch_module`` in place and freeze everything else.

    Raises ConfigError when the model has no layer to adapt.
    """
    # peft takes seconds to import: only LoRA runs pay for it.
    from peft import LoraConfig as PeftLoraConfig
    from peft.tuners.lora import LoraModel

    module = model.torch_module
    names = lora_target_names(module, cfg.target_modules)
    if not names:
        which = ", ".join(cfg.target_modules) if cfg.target_modules else "attention projections"
        raise ConfigError(
            f"LoRA found no layers to adapt ({which}) in this model; use method 'full' or 'lock_image' instead."
        )
    peft_cfg = PeftLoraConfig(
        r=int(cfg.rank),
        lora_alpha=float(cfg.alpha),
        lora_dropout=float(cfg.dropout),
        target_modules=names,  # exact names: no guessing by peft
        bias="none",
    )
    tuner = LoraModel(module, peft_cfg, "default")  # freezes every non-adapter parameter
    for name, param in module.named_parameters():
        if "lora_" not in name and any(key in name for key in _ALSO_TRAINED):
            param.requires_grad_(True)
    return LoraAdapters(tuner=tuner, target_names=names)


def merged_copy(model: ImageTextModel, adapters: LoraAdapters) -> ImageTextModel:
    """A copy of ``model`` with the adapters merged into the weights; the training model is untouched."""
    tuner = copy.deepcopy(adapters.tuner)
    merged = tuner.merge_and_unload()
    if hasattr(merged, "peft_config"):
        del merged.peft_config
    return with_module(model, merged)


def with_module(model: ImageTextModel, module: nn.Module) -> ImageTextModel:
    """A shallow copy of the model wrapper whose torch module is ``module`` (tokenizer etc. shared)."""
    original = model.torch_module
    clone = copy.copy(model)
    swapped = False
    for attr, value in vars(model).items():
        if value is original:
            setattr(clone, attr, module)
            swapped = True
    if not swapped:
        raise TypeError(f"can't find the torch module inside {type(model).__name__}")
    if hasattr(clone, "_fingerprint"):
        clone._fingerprint = None
    return clone
