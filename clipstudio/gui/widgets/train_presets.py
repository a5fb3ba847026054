"""The training form's presets: tested starting points, each a few TrainConfig fields by dotted path.

A preset leaves every other field of ``PRESET_PATHS`` at its default, so choosing one after another never
mixes the two; a config that matches none is ``CUSTOM``.
"""

from __future__ import annotations

import copy

from clipstudio.engine.config import (
    AUTO_METHOD,
    BUILTIN_LEARNING_RATES,
    DEFAULT_LEARNING_RATES,
    TrainConfig,
    config_field,
)
from clipstudio.engine.training.presets import CLIP_LORA, clip_lora_steps, preset_settings
from clipstudio.gui.widgets.train_choices import METHODS

CUSTOM = "Custom"
_DEFAULTS = TrainConfig()
# The documented defaults are a preset too, so choosing them again is one click, not "Custom".
DEFAULT_PRESET = f"Defaults ({METHODS[_DEFAULTS.method][0].lower()}, {_DEFAULTS.epochs} epochs)"
AUTO_PRESET = "Auto (picks the method for your data)"  # what a fresh profile shows
CLIP_LORA_PRESET = "CLIP-LoRA (published few-shot recipe)"
# Preset -> (the config fields it sets, by dotted path, a plain tooltip). A preset leaves every other field
# of PRESET_PATHS at its default, so choosing one after another never mixes the two.
_PRESETS: dict[str, tuple[dict, str]] = {
    AUTO_PRESET: (
        {"method": AUTO_METHOD, "epochs": 10},
        "Lets the app pick the method from your data when training starts, and say which and why.",
    ),
    DEFAULT_PRESET: (
        {"method": _DEFAULTS.method, "epochs": _DEFAULTS.epochs},
        "The documented defaults: every weight of the model learns, at the model's own learning rate where it "
        f"has one (the built-in model: {BUILTIN_LEARNING_RATES['full']:g}), else "
        f"{DEFAULT_LEARNING_RATES['full']:g}. Minutes to hours on a CPU.",
    ),
    "Quick check (linear probe, 10 epochs)": (
        {"method": "linear_probe", "epochs": 10},
        "A classifier on the model's image features: a first result in seconds.",
    ),
    "Small dataset (LoRA, 10 epochs)": (
        {"method": "lora", "epochs": 10},
        "Small add-on layers learn while the model itself stays as it was.",
    ),
    CLIP_LORA_PRESET: (
        {**preset_settings(CLIP_LORA), "epochs": 10},
        "CLIP-LoRA as published for few images per class: tiny add-ons on the attention layers, the same "
        f"fixed settings for every dataset, {clip_lora_steps(None):,} training steps checked on the validation "
        "images 10 times. Slow on a CPU.",
    ),
}
PRESET_PATHS = sorted({path for settings, _ in _PRESETS.values() for path in settings} | {"learning_rate"})
PRESETS: dict[str, dict] = {
    name: {path: settings.get(path, config_field(TrainConfig, path)[1]) for path in PRESET_PATHS}
    for name, (settings, _) in _PRESETS.items()
}
PRESET_TIPS = {name: tip for name, (_, tip) in _PRESETS.items()}


def preset_of(cfg: TrainConfig) -> str:
    """The preset whose settings ``cfg`` has, else CUSTOM."""
    for name, values in PRESETS.items():
        if all(_get_path(cfg, path) == value for path, value in values.items()):
            return name
    return CUSTOM


def apply_preset_to(cfg: TrainConfig, name: str) -> None:
    """Set ``cfg``'s preset fields (``PRESET_PATHS``) to preset ``name``'s values, in place."""
    for path, value in PRESETS[name].items():
        _set_path(cfg, path, copy.deepcopy(value))


def _get_path(cfg: TrainConfig, path: str):
    target = cfg
    for name in path.split("."):
        target = getattr(target, name)
    return target


def _set_path(cfg: TrainConfig, path: str, value) -> None:
    *parents, name = path.split(".")
    target = cfg
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, name, value)


__all__ = [
    "AUTO_PRESET",
    "CLIP_LORA_PRESET",
    "CUSTOM",
    "DEFAULT_PRESET",
    "PRESETS",
    "PRESET_PATHS",
    "PRESET_TIPS",
    "apply_preset_to",
    "preset_of",
]
