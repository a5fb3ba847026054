"""`clipstudio train` and `clipstudio eval` as a user meets them, and `--model RUN` in the other commands."""

from __future__ import annotations

import json
import signal

import pytest

from clipstudio.cli import train as train_commands
from clipstudio.cli.main import main
from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.runs.load import is_run_folder, read_history, read_run_config
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_data import _PALETTE, write_png


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _colour_classes(root, per_class=6):
    for c, name in enumerate(["blue", "green", "red"]):
        r, g, b = _PALETTE[c]
        for i in range(per_class):
            shade = 10 * (i % 5)
            write_png(root / name / f"{name}_{i}.png", (r - shade, g - shade, b - shade))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_clip_dir):
    """Colour-class data, a full fine-tuning run and a linear-probe run on it (tiny CLIP)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSTUDIO_HOME", str(root / "home"))
        mp.setenv("CLIPSTUDIO_CACHE_DIR", str(root / "home" / "cache"))
        data = _colour_classes(root / "data")
        common = dict(data=DataConfig(path=str(data)), model=ModelConfig(spec=str(tiny_clip_dir), device="cpu"))
        full = TrainConfig(**common, output=str(root / "full"), epochs=1, batch_size=6, learning_rate=1e-3,
                           warmup_steps=0, amp=False)
        probe = TrainConfig(**common, output=str(root / "probe"), method="linear_probe", epochs=4,
                            batch_size=8, learning_rate=0.2, warmup_steps=0, weight_decay=0.0)
        for cfg in (full, probe):
            assert Trainer(cfg).fit().status == "completed"
    return {"data": data, "full": root / "full", "probe": root / "probe", "start": tiny_clip_dir}


def test_train_writes_a_run_folder_and_flags_override_the_config_file(
    capsys, tmp_path, make_class_folders, tiny_clip_dir
):
    data = make_class_folders(tmp_path / "data", {"a": 5, "b": 5})
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 5, "learning_rate": 3e-4, "batch_size": 4, "warmup_steps": 0}), "utf-8")
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--config", config, "--data", data, "--output", out_dir,
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


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--method", "everything"], "--method"),
        (["train", "--epochs", "two"], "--epochs"),
        (["train", "--data", "somewhere", "--epochs", "0"], "epochs"),
        (["train", "--output", "somewhere"], "--data"),
        (["train", "--data", "x", "--use-cv", "--n-splits", "1"], "n-splits"),
        (["eval", "not-a-run", "--data", "x"], "not-a-run"),
    ],
)
def test_bad_train_and_eval_arguments_exit_2_with_one_line(capsys, argv, needle):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("clipstudio") and needle in lines[-1]
    assert "Traceback" not in err


def test_unknown_keys_in_config_and_sweep_files_are_named(capsys, tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 1, "learning_rte": 1e-5}), "utf-8")
    code, _, err = run(capsys, "train", "--config", config, "--data", tmp_path)
    assert code == 2 and "'learning_rte'" in err and len(err.strip().splitlines()) == 1

    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps([{"learning_rate": 1e-6}, {"lr": 2e-6}]), "utf-8")
    code, _, err = run(capsys, "train", "--data", tmp_path, "--output", tmp_path / "s", "--multi-config", sweep)
    assert code == 2 and "'lr'" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_saves_a_cancelled_run_that_resume_from_finishes(
    capsys, tmp_path, make_class_folders, tiny_clip_dir, monkeypatch
):
    data = make_class_folders(tmp_path / "data", {"a": 8, "b": 8})
    out_dir = tmp_path / "run"
    real_on_step = train_commands.TrainProgress.on_step

    def press_ctrl_c_once(self, event):
        real_on_step(self, event)
        monkeypatch.setattr(train_commands.TrainProgress, "on_step", real_on_step)
        signal.raise_signal(signal.SIGINT)  # what the console sends on Ctrl+C

    monkeypatch.setattr(train_commands.TrainProgress, "on_step", press_ctrl_c_once)
    code, out, err = run(capsys, "train", "--data", data, "--output", out_dir, "--model", tiny_clip_dir,
                         "--method", "linear_probe", "--epochs", "3", "--batch-size", "4", "--device", "cpu")
    assert code == 130, err
    assert "stopping after the current step" in err
    assert "--resume-from" in out
    assert (out_dir / "checkpoint_latest").is_dir()
    assert read_history(out_dir).get("epoch", []) == []  # stopped inside epoch 1

    code, out, err = run(capsys, "train", "--resume-from", out_dir)
    assert code == 0, err
    assert read_history(out_dir)["epoch"] == [1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_eval_json_has_before_and_after_like_zeroshot(capsys, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, err = run(capsys, "eval", trained["full"], "--data", trained["data"], "--json", out_json,
                         "--device", "cpu", "--no-cache")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(d) == {"before", "after"}
    for side in ("before", "after"):
        for key in ("n", "classes", "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "split"):
            assert key in d[side]
        assert d[side]["n"] == 18 and d[side]["split"] == "all"
    assert d["after"]["model"] == str(trained["full"]) and d["after"]["wise_alpha"] is None
    assert d["before"]["model"] == str(trained["start"])
    assert "before" in out and "after" in out and "balanced accuracy" in out


def test_eval_wise_alpha_zero_is_the_starting_model_and_is_labelled(capsys, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, _ = run(capsys, "eval", trained["full"], "--data", trained["data"], "--wise-alpha", "0",
                       "--json", out_json, "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["wise_alpha"] == 0.0
    assert d["after"]["confusion_matrix"] == d["before"]["confusion_matrix"]
    assert "WiSE-FT alpha 0" in out


def test_linear_probe_eval_scores_the_trained_head(capsys, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, _ = run(capsys, "eval", trained["probe"], "--data", trained["data"], "--json", out_json,
                       "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["accuracy"] == 1.0 > d["before"]["accuracy"]


def test_zeroshot_accepts_a_run_folder_as_model(capsys, tmp_path, trained):
    out_json = tmp_path / "zs.json"
    code, _, err = run(capsys, "zeroshot", trained["data"], "--model", trained["probe"], "--json", out_json,
                       "--device", "cpu")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["model"] == str(trained["probe"]) and d["accuracy"] == 1.0  # the probe's head, not the prompts
