"""`clipstudio train [DATA]` as a user meets it: run folders, flags over --config, Ctrl+C and resume."""

from __future__ import annotations

import json
import signal

import pytest

from clipstudio.cli import train as train_command
from clipstudio.engine.events import EpochEnded
from clipstudio.engine.runs.layout import is_run_folder, read_history, read_run_config


def test_train_writes_a_run_folder_and_flags_override_the_config_file(
    cli, tmp_path, make_class_folders, tiny_clip_dir
):
    data = make_class_folders(tmp_path / "data", {"a": 5, "b": 5})
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 5, "learning_rate": 3e-4, "batch_size": 4, "warmup_steps": 0}), "utf-8")
    out_dir = tmp_path / "run"
    code, out, err = cli("train", data, "--config", config, "--output", out_dir,
                         "--model", tiny_clip_dir, "--epochs", "2", "--no-amp", "--device", "cpu")
    assert code == 0, err
    assert is_run_folder(out_dir)
    recorded = read_run_config(out_dir)
    assert recorded.epochs == 2  # the flag wins
    assert (recorded.learning_rate, recorded.batch_size) == (3e-4, 4)  # the file's values stay
    assert recorded.amp is False
    assert read_history(out_dir)["epoch"] == [1, 2]
    assert "epoch 1/2" in out and "epoch 2/2" in out and "val" in out
    assert f"Run folder: {out_dir}" in out and "Best val_balanced_acc" in out
    assert "Precision: full precision (fp32) — mixed precision is off." in out  # what it chose, and why


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--method", "everything"], "--method"),
        (["train", "--epochs", "two"], "--epochs"),
        (["train", "somewhere", "--epochs", "0"], "epochs"),
        (["train", "--output", "somewhere"], "DATA is required"),
        (["train", "x", "--use-cv", "--n-splits", "1"], "n-splits"),
        (["eval", "not-a-run", "x"], "not-a-run"),
    ],
)
def test_bad_train_and_eval_arguments_exit_2_with_one_line(cli, argv, needle):
    code, _, err = cli(*argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("clipstudio") and needle in lines[-1]
    assert "Traceback" not in err


def test_unknown_keys_in_config_and_sweep_files_are_named(cli, tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 1, "learning_rte": 1e-5}), "utf-8")
    code, _, err = cli("train", tmp_path, "--config", config)
    assert code == 2 and "'learning_rte'" in err and len(err.strip().splitlines()) == 1

    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps([{"learning_rate": 1e-6}, {"lr": 2e-6}]), "utf-8")
    code, _, err = cli("train", tmp_path, "--output", tmp_path / "s", "--multi-config", sweep)
    assert code == 2 and "'lr'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a cancelled run, then its resume
def test_ctrl_c_saves_a_cancelled_run_that_resume_from_finishes(
    cli, tmp_path, make_class_folders, tiny_clip_dir, monkeypatch
):
    data = make_class_folders(tmp_path / "data", {"a": 8, "b": 8})
    out_dir = tmp_path / "run"
    real_on_step = train_command.TrainProgress.on_step
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run in a background job

    def press_ctrl_c_once(self, event):
        real_on_step(self, event)
        monkeypatch.setattr(train_command.TrainProgress, "on_step", real_on_step)
        signal.raise_signal(signal.SIGINT)  # what the console sends on Ctrl+C

    monkeypatch.setattr(train_command.TrainProgress, "on_step", press_ctrl_c_once)
    code, out, err = cli("train", data, "--output", out_dir, "--model", tiny_clip_dir,
                         "--method", "linear_probe", "--epochs", "3", "--batch-size", "4", "--device", "cpu")
    assert code == 130, err
    assert "stopping after the current step" in err
    assert "--resume-from" in out
    assert (out_dir / "checkpoint_latest").is_dir()
    assert read_history(out_dir).get("epoch", []) == []  # stopped inside epoch 1

    code, out, err = cli("train", "--resume-from", out_dir)
    assert code == 0, err
    assert read_history(out_dir)["epoch"] == [1, 2, 3]
    assert signal.getsignal(signal.SIGINT) == before  # the handler is put back


@pytest.mark.parametrize("name", ["config", "sweep", "class texts"])
def test_a_non_utf8_file_the_user_names_exits_2_with_one_line(cli, tmp_path, name, make_class_folders,
                                                              tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    latin1 = tmp_path / "latin1.json"
    content = {"config": '{"output": "Röntgen"}', "sweep": '[{"output": "Röntgen"}]',
               "class texts": '{"a": "Röntgen"}'}[name]
    latin1.write_bytes(content.encode("latin-1"))
    flag = {"config": "--config", "sweep": "--multi-config", "class texts": "--class-texts"}[name]
    code, _, err = cli("train", data, flag, latin1, "--output", tmp_path / "out", "--model", tiny_clip_dir,
                       "--device", "cpu", "--method", "linear_probe", "--epochs", "1")
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()]  # one line, no traceback
    assert str(latin1) in err and "not UTF-8" in err



def test_an_epoch_line_shows_the_validation_metrics_the_epoch_has():
    classes = EpochEnded(epoch=2, train_loss=0.5, train_acc=0.5, val_loss=0.3, val_acc=0.8, val_balanced_acc=0.7,
                         val_mean_recall=None, lr=1e-4, seconds=2.0)
    assert train_command.format_epoch(classes, 5) == (
        "epoch 2/5  train loss 0.5000 acc 0.500  val loss 0.3000 acc 0.800 bal acc 0.700  lr 1.00e-04  2.0 s"
    )
    no_val = EpochEnded(epoch=1, train_loss=0.5, train_acc=0.5, val_loss=None, val_acc=None, val_balanced_acc=None,
                        val_mean_recall=None, lr=1e-4, seconds=2.0)
    assert train_command.format_epoch(no_val, 5) == "epoch 1/5  train loss 0.5000 acc 0.500  lr 1.00e-04  2.0 s"


@pytest.mark.slow  # trains, then evaluates twice
def test_train_method_tip_adapter_then_eval_scores_its_cache(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 6, "b": 6, "c": 6})
    out_dir = tmp_path / "run"
    code, out, err = cli("train", data, "--output", out_dir, "--model", tiny_clip_dir,
                         "--method", "tip_adapter", "--device", "cpu")
    assert code == 0, err
    assert read_history(out_dir)["epoch"] == [1]  # training-free: one epoch, whatever --epochs says
    assert "trains nothing" in out + err and "nothing trained" in out
    assert (out_dir / "checkpoint_best" / "tip_adapter_cache.safetensors").is_file()

    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", out_dir, data, "--json", out_json, "--device", "cpu")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["balanced_accuracy"] > d["before"]["balanced_accuracy"]
    # WiSE-FT alpha 0 weighs the cache 0: the starting model's zero-shot, prediction for prediction.
    code, out, err = cli("eval", out_dir, data, "--wise-alpha", "0", "--json", out_json, "--device", "cpu")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["confusion_matrix"] == d["before"]["confusion_matrix"]
