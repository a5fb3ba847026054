"""The config tree: JSON round trip, old files migrated, validation, help texts; training events as plain data."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clipstudio.engine.config import (
    SCHEMA_VERSION,
    DataConfig,
    EvalConfig,
    StudioConfig,
    TrainConfig,
    from_dict,
    help_for,
    load_config,
    operating_point_rule,
    save_config,
    to_dict,
)
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


def test_a_version_1_run_config_with_the_removed_keys_still_loads(tmp_path):
    old = to_dict(TrainConfig(epochs=3))
    old["schema_version"] = 1
    old.update(embed_dim=256, temperature=0.05)
    old["data"]["k_folds"] = 5
    old["cv"]["random_state"] = 42
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old), encoding="utf-8")

    cfg = load_config(TrainConfig, path)

    assert cfg == TrainConfig(epochs=3)
    assert "embed_dim" not in to_dict(cfg) and to_dict(cfg)["schema_version"] == SCHEMA_VERSION == 2


@pytest.mark.parametrize("key", ["embed_dim", "temperature"])
def test_the_removed_keys_are_unknown_in_current_files(key):
    data = to_dict(TrainConfig())
    data[key] = 1
    with pytest.raises(ConfigError, match=key):
        from_dict(TrainConfig, data)


@pytest.mark.parametrize("version", [0, 3, "2", True])
def test_unsupported_schema_versions_are_named(version):
    with pytest.raises(ConfigError, match="schema_version"):
        from_dict(TrainConfig, {"schema_version": version})


def test_dead_settings_are_gone_from_the_tree():
    assert not {"embed_dim", "temperature"} & {f.name for f in dataclasses.fields(TrainConfig)}
    assert "k_folds" not in {f.name for f in dataclasses.fields(DataConfig)}
    assert "random_state" not in to_dict(TrainConfig())["cv"]


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "below 1"),
        ({"seed": -1}, "data.seed"),
    ],
)
def test_invalid_data_settings_name_the_setting(change, word):
    cfg = TrainConfig(data=DataConfig(**change))
    with pytest.raises(ConfigError, match=word):
        cfg.validate()


def test_invalid_evaluation_settings_name_the_setting():
    cfg = StudioConfig()
    cfg.eval.recall_k = [1, 0]
    with pytest.raises(ConfigError, match="recall_k"):
        cfg.validate()
    cfg = TrainConfig()
    cfg.cv.use_cv, cfg.cv.n_splits = True, 1
    with pytest.raises(ConfigError, match="n_splits"):
        cfg.validate()


def test_every_setting_has_a_help_text_that_states_its_default():
    def paths(cls, prefix=""):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
                yield from paths(f.default_factory, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    for path in paths(TrainConfig):
        text = help_for(TrainConfig, path)
        assert text.strip(), path
        assert "Default" in text or path == "data.path", f"{path}: {text}"


def test_help_quotes_the_dataclass_default_so_it_cannot_drift():
    assert help_for(TrainConfig, "epochs").endswith(f"Default: {TrainConfig().epochs}.")
    assert help_for(TrainConfig, "amp").endswith("Default: on.")
    assert help_for(TrainConfig, "lora.alpha").endswith("Default: 8.")
    assert help_for(StudioConfig, "eval.recall_k").endswith("Default: 1 5 10.")
    assert "Default" not in help_for(TrainConfig, "epochs", with_default=False)



def test_eval_config_checks_the_coverage_and_the_operating_point_spelling():
    EvalConfig(coverage=0.95, operating_point="sensitivity=0.9").validate()
    assert operating_point_rule("specificity = 0.8") == ("target_specificity", 0.8)
    for bad in (dict(coverage=1.0), dict(coverage=0.0), dict(operating_point="sensitivity=0"),
                dict(operating_point="ppv=0.9")):
        with pytest.raises(ConfigError, match="coverage|operating point"):
            EvalConfig(**bad).validate()
