"""Sweeps: a JSON array of partial configs -> one run per config and one summary table."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import SWEEP_SUMMARY_JSON, SWEEP_SUMMARY_MD, is_run_folder, read_run_config
from clipstudio.engine.training.sweep import load_sweep_configs, merge_config, run_sweep


def _base(data, out, model) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(path=str(data)),
        model=ModelConfig(spec=str(model), device="cpu"),
        output=str(out),
        method="linear_probe",
        epochs=1,
        batch_size=8,
        warmup_steps=0,
    )


@pytest.mark.slow  # two training runs
def test_two_config_sweep_writes_runs_and_a_summary_table(tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 4, "green": 4})
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps([{"learning_rate": 0.01}, {"learning_rate": 0.1, "epochs": 2}]), "utf-8")

    summary = run_sweep(sweep_file, base=_base(data, tmp_path / "sweep", tiny_clip_dir))

    root = tmp_path / "sweep"
    assert is_run_folder(root / "run_1") and is_run_folder(root / "run_2")
    assert read_run_config(root / "run_2").learning_rate == 0.1
    assert read_run_config(root / "run_2").method == "linear_probe"  # the base config still applies
    written = json.loads((root / SWEEP_SUMMARY_JSON).read_text(encoding="utf-8"))
    assert written == {k: v for k, v in summary.items() if k != "run_dir"}
    assert written["complete"] is True and written["varied"] == ["epochs", "learning_rate"]
    assert [r["run"] for r in written["runs"]] == ["run_1", "run_2"]
    assert [r["epochs"] for r in written["runs"]] == [1, 2]
    assert written["runs"][1]["changes"] == {"epochs": 2, "learning_rate": 0.1}
    assert all(r["best_metric"] is not None for r in written["runs"])
    table = (root / SWEEP_SUMMARY_MD).read_text(encoding="utf-8")
    assert "| run | epochs | learning_rate |" in table
    assert "| run_2 | 2 | 0.1 | completed |" in table


def test_an_unknown_key_is_rejected_by_name_before_anything_trains(tmp_path, tiny_clip_dir):
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps([{"learning_rate": 1e-6}, {"lr": 2e-6}]), "utf-8")
    with pytest.raises(ConfigError, match=r"\[1\].*'lr'"):
        run_sweep(sweep_file, base=_base(tmp_path / "data", tmp_path / "sweep", tiny_clip_dir))
    assert not (tmp_path / "sweep").exists()


def test_nested_settings_merge_key_by_key_and_output_is_the_sweeps(tmp_path):
    base = TrainConfig(epochs=3)
    base.early_stopping.monitor = "val_loss"
    cfg = merge_config(base, {"early_stopping": {"patience": 2}, "lora": {"rank": 4}})
    assert (cfg.early_stopping.patience, cfg.early_stopping.monitor, cfg.epochs) == (2, "val_loss", 3)
    assert cfg.lora.rank == 4 and cfg.lora.alpha == 8.0
    with pytest.raises(ConfigError, match="output"):
        merge_config(base, {"output": "elsewhere"})
    with pytest.raises(ConfigError, match="method"):
        merge_config(base, {"method": "everything"})


def test_the_guide_learning_rate_sweep_file_loads(tmp_path):
    sweep_file = tmp_path / "train_clip_config.json"
    sweep_file.write_text('[{"learning_rate": 1e-6}, {"learning_rate": 1.5e-6}, {"learning_rate": 2e-6}]', "utf-8")
    configs = load_sweep_configs(sweep_file, TrainConfig(epochs=10))
    assert [c.learning_rate for c in configs] == [1e-6, 1.5e-6, 2e-6]
    assert all(c.epochs == 10 for c in configs)
    sweep_file.write_text('{"learning_rate": 1e-6}', "utf-8")
    with pytest.raises(ConfigError, match="array"):
        load_sweep_configs(sweep_file)
