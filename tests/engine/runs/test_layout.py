"""Run folders: the torch-free readers the GUI uses, on real runs and on folders a crash left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clipstudio.engine.config import TrainConfig, save_config
from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.runs.layout import (
    BEST,
    CALIBRATION_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    LATEST,
    METRICS_FILE,
    RUN_FILE,
    STATE_JSON,
    append_metrics_line,
    checkpoint_folder,
    default_run_dir,
    find_checkpoint,
    is_run_folder,
    read_calibration,
    read_history,
    read_metrics,
    read_run_config,
    read_run_info,
    resumable_step,
    run_start_model_spec,
    runs_root,
    truncate_metrics,
    write_calibration,
    write_run_info,
)
from clipstudio.engine.training.checkpoint import load_train_state


def test_importing_the_layout_loads_no_torch_and_no_qt():
    code = "import sys, clipstudio.engine.runs.layout; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {line.split(".")[0] for line in out.stdout.splitlines()}
    assert not loaded & {"torch", "transformers", "numpy", "PySide6"}


def _run_folder(root: Path, **info) -> Path:
    root.mkdir(parents=True)
    save_config(TrainConfig(epochs=3), root / CONFIG_FILE)
    write_run_info(root, {"method": "full", "start_model": "builtin", **info})
    return root


def _checkpoint(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    (folder / STATE_JSON).write_text(json.dumps({"format": 1, "state": {"step": step}}), encoding="utf-8")
    return folder


def test_a_finished_run_reads_back_as_it_was_trained(trained):
    run = trained["full"]
    assert is_run_folder(run) and not is_run_folder(trained["start"])
    assert read_run_info(run)["method"] == "full"
    assert read_run_config(run).epochs == 1
    assert run_start_model_spec(run) == str(trained["start"])
    assert read_history(run)["epoch"] == [1]
    steps = [record["step"] for record in read_metrics(run)]
    assert steps == sorted(steps) and steps[-1] == resumable_step(run)
    assert resumable_step(run) == load_train_state(find_checkpoint(run, LATEST))["step"]


def test_a_folder_without_run_files_is_refused_with_its_path(tmp_path):
    (tmp_path / RUN_FILE).write_text("{}", encoding="utf-8")  # no config.json
    assert not is_run_folder(tmp_path)
    with pytest.raises(ConfigError, match="not a training run folder"):
        read_run_info(tmp_path)
    assert resumable_step(tmp_path) is None


def test_a_damaged_run_json_is_a_config_error(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / RUN_FILE).write_text('{"format": 1, "method"', encoding="utf-8")
    with pytest.raises(ConfigError, match=RUN_FILE):
        read_run_info(run)


def test_history_is_empty_before_the_first_epoch_and_a_damaged_one_is_an_error(tmp_path):
    assert read_history(tmp_path) == {}
    (tmp_path / HISTORY_FILE).write_text('{"epoch": [1', encoding="utf-8")
    with pytest.raises(ConfigError, match=HISTORY_FILE):
        read_history(tmp_path)


def test_calibration_reads_back_is_none_before_the_first_eval_and_a_damaged_one_is_an_error(tmp_path):
    assert read_calibration(tmp_path) is None
    write_calibration(tmp_path, {"temperature": 1.5, "operating_point": None})
    assert read_calibration(tmp_path) == {"temperature": 1.5, "operating_point": None}
    (tmp_path / CALIBRATION_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match=CALIBRATION_FILE):
        read_calibration(tmp_path)


def test_metrics_skip_a_line_cut_short_and_stop_at_a_step(tmp_path):
    for step in (1, 2, 3):
        append_metrics_line(tmp_path, {"epoch": 1, "step": step, "loss": 1.0 / step, "lr": 0.1})
    with open(tmp_path / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"epoch": 1, "st')  # the crash came mid-line
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert [r["step"] for r in read_metrics(tmp_path, up_to_step=2)] == [1, 2]
    truncate_metrics(tmp_path, 2)
    assert (tmp_path / METRICS_FILE).read_text(encoding="utf-8").count("\n") == 2
    assert read_metrics(tmp_path / "missing") == []


def test_resumable_step_reads_the_latest_checkpoint(tmp_path):
    run = _run_folder(tmp_path / "run")
    assert resumable_step(run) is None  # stopped before its first checkpoint
    _checkpoint(run / LATEST, 12)
    assert resumable_step(run) == 12


def test_a_half_written_checkpoint_falls_back_to_the_previous_copy(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / LATEST).mkdir()  # swapped in, but its train_state.json was never written
    (run / f"{LATEST}.tmp-123").mkdir()
    assert find_checkpoint(run, LATEST) is None and resumable_step(run) is None
    previous = _checkpoint(run / f"{LATEST}.old", 8)
    assert find_checkpoint(run, LATEST) == previous
    assert resumable_step(run) == 8


def test_an_unreadable_training_state_still_offers_resume_from_zero(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / LATEST).mkdir()
    (run / LATEST / STATE_JSON).write_text("{broken", encoding="utf-8")
    assert resumable_step(run) == 0  # resuming then reports what is wrong with it


def test_checkpoint_folder_prefers_best_then_latest(tmp_path):
    run = _run_folder(tmp_path / "run")
    with pytest.raises(ModelError, match="no finished checkpoint"):
        checkpoint_folder(run)
    latest = _checkpoint(run / LATEST, 4)
    assert checkpoint_folder(run, "best") == latest
    best = _checkpoint(run / BEST, 2)
    assert checkpoint_folder(run, "best") == best and checkpoint_folder(run, "latest") == latest
    with pytest.raises(ConfigError, match="which"):
        checkpoint_folder(run, "newest")


def test_default_run_dirs_are_new_folders_under_the_users_runs():
    first = default_run_dir("full")
    assert first.parent == runs_root() and first.name.endswith("-full") and not first.exists()
    first.mkdir(parents=True)
    second = default_run_dir("full")
    assert second != first and not second.exists()
