"""Named training recipes that fill in a TrainConfig: ``clipstudio train --preset NAME`` and the app's Train presets.

``clip-lora`` is CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language
Models", CVPR Workshops 2024) with the paper's fixed settings for every dataset: LoRA of rank 2,
alpha 1 and dropout 0.25 on the query, key and value projections of every attention layer of both
towers; AdamW with learning rate 2e-4 and weight decay 1e-2; a cosine schedule without warm-up;
batches of 32 images; 500 optimizer steps per training image per class (``--shots K``: 500 x K).

What "both towers" means depends on the model: HF CLIP has attention in both, so every layer's
``q_proj``/``k_proj``/``v_proj`` is adapted; the built-in model's image tower (EfficientNet-Lite0) is
a CNN without attention, so only its text tower's (MiniLM) ``query``/``key``/``value`` are.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.errors import ConfigError

CLIP_LORA = "clip-lora"
CLIP_LORA_STEPS_PER_SHOT = 500
# The paper's largest few-shot setting. Without --shots the step budget is that of 16 shots: the paper
# gives no schedule for more images per class, and 8,000 steps of 32 images already show each image of a
# few-hundred-image dataset hundreds of times.
CLIP_LORA_MAX_SHOTS = 16
# q/k/v of HF CLIP (both towers) and of BERT/MiniLM text towers; matched against the end of each layer name.
QKV_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
)
_CLIP_LORA_FIXED: dict[str, Any] = {
    "method": "lora",
    "lora.rank": 2,
    "lora.alpha": 1.0,
    "lora.dropout": 0.25,
    "lora.target_modules": list(QKV_TARGETS),
    "learning_rate": 2e-4,
    "weight_decay": 1e-2,
    "batch_size": 32,
    "warmup_steps": 0,
}
PRESETS = (CLIP_LORA,)


def clip_lora_steps(shots_per_class: int | None) -> int:
    """CLIP-LoRA's optimizer steps: 500 per training image per class (16 images when not few-shot)."""
    return CLIP_LORA_STEPS_PER_SHOT * (shots_per_class or CLIP_LORA_MAX_SHOTS)


def preset_settings(name: str, shots_per_class: int | None = None) -> dict[str, Any]:
    """The TrainConfig fields (dotted paths) the preset sets, and their values."""
    if name != CLIP_LORA:
        raise ConfigError(f"Unknown preset {name!r}; the presets are: {', '.join(PRESETS)}.")
    return {**copy.deepcopy(_CLIP_LORA_FIXED), "steps": clip_lora_steps(shots_per_class)}


def apply_preset(cfg: TrainConfig, name: str, *, keep: Collection[str] = ()) -> TrainConfig:
    """A copy of ``cfg`` with the preset's settings, except the fields in ``keep`` (settings typed
    explicitly). The step budget follows ``cfg.data.shots_per_class``."""
    out = copy.deepcopy(cfg)
    for path, value in preset_settings(name, out.data.shots_per_class).items():
        if path in keep:
            continue
        *parents, field_name = path.split(".")
        target: Any = out
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, field_name, value)
    return out


__all__ = ["CLIP_LORA", "PRESETS", "QKV_TARGETS", "apply_preset", "clip_lora_steps", "preset_settings"]
