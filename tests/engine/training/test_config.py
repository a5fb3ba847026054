"""TrainConfig serialisation and validation, and training events as plain data."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clipstudio.engine.config import TrainConfig, from_dict, load_config, save_config, to_dict
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import (
    CheckpointSaved,
    EpochEnded,
    EvalEnded,
    StepEnded,
    TrainEnded,
    TrainStarted,
)


def test_train_config_round_trips_through_config_json(tmp_path):
    cfg = TrainConfig(method="lora", epochs=3, learning_rate=None, output=str(tmp_path / "run"))
    cfg.lora.rank = 4
    cfg.lora.target_modules = ["q_proj", "v_proj"]
    cfg.early_stopping.patience = 2
    cfg.prompts.templates = ["a scan of {class_name}."]

    save_config(cfg, tmp_path / "config.json")

    assert load_config(TrainConfig, tmp_path / "config.json") == cfg


def test_unknown_keys_are_rejected_by_name():
    data = to_dict(TrainConfig())
    data["lora"]["rnak"] = 4
    with pytest.raises(ConfigError, match="rnak"):
        from_dict(TrainConfig, data)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"method": "finetune"}, "method"),
        ({"loss": "triplet"}, "loss"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"augmentation": "heavy"}, "augmentation"),
    ],
)
def test_invalid_settings_name_the_setting(change, word):
    cfg = dataclasses.replace(TrainConfig(), **change)
    with pytest.raises(ConfigError, match=word):
        cfg.validate()


def test_learning_rate_defaults_depend_on_the_method():
    assert TrainConfig(method="full").resolved_learning_rate() == 1e-5
    assert TrainConfig(method="lora").resolved_learning_rate() == 1e-4
    assert TrainConfig(method="linear_probe").resolved_learning_rate() == 1e-3
    assert TrainConfig(method="lora", learning_rate=3e-4).resolved_learning_rate() == 3e-4


def test_training_events_are_json_serialisable_plain_data():
    events = [
        TrainStarted("run", "full", 2, 3, 6, 18, 6, "cpu"),
        StepEnded(1, 1, 6, 2.5, 1e-5, 40.0),
        EpochEnded(1, 2.0, 0.5, 1.9, 0.6, 0.55, None, 1e-5, 3.2),
        EvalEnded(1, (("val_acc", 0.6), ("val_loss", 1.9))),
        CheckpointSaved("run/checkpoint_latest", "latest", 1, 3),
        TrainEnded("completed", "run", 0.6, "Finished 2 epoch(s)."),
    ]
    for event in events:
        json.dumps(dataclasses.asdict(event))
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.run_dir = "x"  # type: ignore[misc]
