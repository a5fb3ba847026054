"""Shared arguments: one spelling per flag (old ones still accepted), help texts from the config fields,
numbers validated with one line, and arguments -> the config tree."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clipstudio.cli.args import config_from_args, train_config_from_args
from clipstudio.cli.main import build_parser
from clipstudio.engine.config import (
    EVAL_BATCH_SIZE,
    RECALL_KS,
    DataConfig,
    StudioConfig,
    TrainConfig,
    help_for,
)
from clipstudio.engine.errors import ConfigError


def _train(*argv: str) -> TrainConfig:
    return train_config_from_args(build_parser().parse_args(["train", *argv]))


def _flat_help(cli, *argv: str) -> str:
    code, out, _ = cli(*argv, "--help")
    assert code == 0
    return " ".join(out.split())


def test_old_train_spellings_give_the_same_config_as_the_new_ones(tmp_path):
    texts = tmp_path / "texts.json"
    new = _train(str(tmp_path), "--template", "a {} scan", "--class-texts", str(texts), "--split-seed", "3")
    old = _train("--data", str(tmp_path), "--text-template", "a {} scan", "--class-texts-file", str(texts),
                 "--random-state", "3")
    assert new == old
    assert new.data.path == str(tmp_path) and new.data.seed == 3
    assert new.prompts.templates == ["a {class_name} scan"] and new.prompts.class_texts == str(texts)


def test_old_spellings_are_accepted_but_not_advertised(cli):
    shown = _flat_help(cli, "train")
    for old in ("--data ", "--text-template", "--class-texts-file", "--random-state"):
        assert old not in shown
    assert "--template" in shown and "--class-texts" in shown and "[DATA]" in shown


def test_data_given_twice_differently_is_one_line_error(cli, tmp_path):
    code, _, err = cli("train", tmp_path / "a", "--data", tmp_path / "b")
    assert code == 2 and "DATA given twice" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--embed-dim", "--temperature"])
def test_dead_options_are_gone(cli, tmp_path, flag):
    code, _, err = cli("train", tmp_path, flag, "256")
    assert code == 2 and flag in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "x", "--epochs", "0"], "--epochs: must be at least 1 (got 0)"),
        (["train", "x", "--learning-rate", "-0.001"], "--learning-rate/--lr: must be positive"),
        (["train", "x", "--val-fraction", "1.5"], "--val-fraction: must be in [0, 1)"),
        (["train", "x", "--lora-dropout", "nan"], "--lora-dropout: must be in [0, 1)"),
        (["train", "x", "--seed", "-3"], "--seed: must be 0 or more"),
        (["train", "x", "--use-cv", "--n-splits", "1"], "--n-splits: must be at least 2"),
        (["zeroshot", "x", "--model", "m", "--batch-size", "0"], "--batch-size: must be at least 1"),
        (["retrieve", "x", "--model", "m", "--k", "0"], "--k: must be at least 1"),
        (["search", "x", "--model", "m", "--text", "t", "--top", "-1"], "--top: must be at least 1"),
        (["eval", "run", "x", "--wise-alpha", "2"], "--wise-alpha: must be between 0 and 1"),
    ],
)
def test_meaningless_numbers_are_one_line_naming_the_flag(cli, argv, needle):
    code, _, err = cli(*argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_train_help_quotes_each_fields_help_and_dataclass_default(cli):
    shown = _flat_help(cli, "train")
    for path in ("epochs", "learning_rate", "seed", "data.seed", "cv.n_splits", "early_stopping.monitor",
                 "lora.alpha", "data.val_fraction"):
        assert help_for(TrainConfig, path) in shown, path
    assert f"Default: {TrainConfig().epochs}." in shown
    # Which seed does what is said on both.
    assert "Training seed" in help_for(TrainConfig, "seed") and "Split seed" in help_for(TrainConfig, "data.seed")


def test_evaluation_defaults_come_from_the_config(cli):
    shown = _flat_help(cli, "retrieve")
    assert f"Images per forward pass. Default: {EVAL_BATCH_SIZE}." in shown
    assert "Default: " + " ".join(map(str, RECALL_KS)) + "." in shown


def test_evaluation_command_config(tmp_path):
    args = build_parser().parse_args(["retrieve", str(tmp_path), "--model", "builtin", "--k", "1", "3",
                                      "--no-cache", "--split", "val"])
    cfg = config_from_args(args)
    assert cfg.data == DataConfig(path=str(tmp_path))
    assert (cfg.eval.recall_k, cfg.eval.use_cache, cfg.eval.split) == ([1, 3], False, "val")
    assert cfg.eval.batch_size == StudioConfig().eval.batch_size == EVAL_BATCH_SIZE


def test_flags_override_the_config_file_and_unset_flags_keep_it(tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 5, "learning_rate": 3e-4, "data": {"seed": 9}}), "utf-8")
    cfg = _train("--config", str(config), "--epochs", "2", "--no-amp")
    assert (cfg.epochs, cfg.learning_rate, cfg.data.seed, cfg.amp) == (2, 3e-4, 9, False)
    assert dataclasses.replace(cfg, epochs=5, amp=True) == _train("--config", str(config))


def test_config_file_values_are_validated_too(tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"data": {"val_fraction": 0.7, "test_fraction": 0.5}}), "utf-8")
    with pytest.raises(ConfigError, match="val_fraction"):
        _train("--config", str(config))
