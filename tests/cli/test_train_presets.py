"""`clipstudio train --method auto` and `--preset clip-lora`, as a user types them."""

from __future__ import annotations

import pytest

from clipstudio.cli.args import train_config_from_args
from clipstudio.cli.main import build_parser
from clipstudio.engine.runs.layout import read_run_config, read_run_info
from clipstudio.engine.training.presets import QKV_TARGETS


def test_train_method_auto_says_what_it_picked_and_the_run_records_it(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 6, "b": 6, "c": 6})
    out_dir = tmp_path / "run"

    code, out, err = cli("train", data, "--output", out_dir, "--model", tiny_clip_dir, "--method", "auto",
                         "--epochs", "2", "--device", "cpu")

    assert code == 0, err
    assert "Auto picked the linear probe: a typical class has 5 training images" in out  # 6 less validation
    assert "Training (linear_probe)" in out
    assert read_run_config(out_dir).method == "linear_probe"
    assert read_run_info(out_dir)["method"] == "linear_probe"
    code, out, err = cli("eval", out_dir, data, "--device", "cpu")  # eval reads the recorded method
    assert code == 0, err


def _train_config(*argv: str):
    return train_config_from_args(build_parser().parse_args(["train", "data", *argv]))


def test_preset_clip_lora_takes_500_steps_per_shot_and_typed_flags_win():
    cfg = _train_config("--preset", "clip-lora", "--shots", "4", "--lora-rank", "4")

    assert cfg.method == "lora" and cfg.steps == 2000
    assert (cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules) == (1.0, 0.25, list(QKV_TARGETS))
    assert (cfg.learning_rate, cfg.weight_decay, cfg.batch_size, cfg.warmup_steps) == (2e-4, 1e-2, 32, 0)
    assert cfg.lora.rank == 4  # typed: it wins over the preset
    assert _train_config("--preset", "clip-lora", "--steps", "300").steps == 300


def test_an_unknown_preset_exits_2_naming_the_choices(cli):
    code, _, err = cli("train", "data", "--preset", "clip")
    assert code == 2 and "clip-lora" in err


@pytest.mark.parametrize("flag", ["--method", "--preset"])
def test_train_help_lists_auto_and_clip_lora(cli, flag):
    code, out, _ = cli("train", "--help")
    assert code == 0 and flag in out and "auto" in out and "clip-lora" in out
