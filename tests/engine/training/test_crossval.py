"""k-fold cross-validation: one run folder per fold and a summary over the folds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.config import CrossValConfig, DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.splits import apply_group_regex
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import TrainEnded
from clipstudio.engine.runs.layout import CV_SUMMARY_FILE, is_run_folder, read_run_info
from clipstudio.engine.training.crossval import cv_folds, run_cross_validation


def _probe_config(data, out, model, k=3) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(path=str(data), seed=7),
        model=ModelConfig(spec=str(model), device="cpu"),
        output=str(out),
        method="linear_probe",
        epochs=1,
        batch_size=8,
        learning_rate=0.1,
        warmup_steps=0,
        cv=CrossValConfig(use_cv=True, n_splits=k),
    )


@pytest.mark.slow  # one training run per fold
def test_one_run_folder_per_fold_and_a_summary_with_mean_and_std(tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 6, "green": 6, "blue": 6})
    summary = run_cross_validation(_probe_config(data, tmp_path / "cv", tiny_clip_dir))

    for i in (1, 2, 3):
        assert is_run_folder(tmp_path / "cv" / f"fold_{i}")
    written = json.loads((tmp_path / "cv" / CV_SUMMARY_FILE).read_text(encoding="utf-8"))
    assert written["complete"] is True and written["n_splits"] == 3 and len(written["folds"]) == 3
    monitor = written["monitor"]
    assert monitor == "val_balanced_acc"
    values = [fold["metrics"][monitor] for fold in written["folds"]]
    assert written["mean"][monitor] == pytest.approx(np.mean(values))
    assert written["std"][monitor] == pytest.approx(np.std(values, ddof=1))
    # Every image is validated exactly once across the folds.
    val_images = []
    for i in (1, 2, 3):
        val_images += json.loads((tmp_path / "cv" / f"fold_{i}" / "splits.json").read_text("utf-8"))["val"]
    assert sorted(val_images) == sorted(str(p) for p in load_dataset(data).paths)
    assert summary["run_dir"] == str(tmp_path / "cv")


def test_cancelling_stops_after_the_current_fold_with_a_partial_summary(
    tmp_path, make_class_folders, tiny_clip_dir
):
    data = make_class_folders(tmp_path / "data", {"red": 4, "green": 4})
    ended = []

    def on_event(event):
        if isinstance(event, TrainEnded):
            ended.append(event.status)

    summary = run_cross_validation(
        _probe_config(data, tmp_path / "cv", tiny_clip_dir, k=2), [on_event], should_stop=lambda: bool(ended)
    )
    assert ended == ["completed"]
    assert not (tmp_path / "cv" / "fold_2").exists()
    written = json.loads((tmp_path / "cv" / CV_SUMMARY_FILE).read_text(encoding="utf-8"))
    assert written["complete"] is False and written["cancelled"] is True and len(written["folds"]) == 1
    assert summary["std"]["val_balanced_acc"] is None  # one fold: no spread to report


def test_with_method_auto_the_summary_names_the_method_auto_picked(tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 4, "green": 4})
    cfg = _probe_config(data, tmp_path / "cv", tiny_clip_dir, k=2)
    cfg.method = "auto"

    summary = run_cross_validation(cfg)

    written = json.loads((tmp_path / "cv" / CV_SUMMARY_FILE).read_text(encoding="utf-8"))
    # 2 training images per class: Auto picks the linear probe for each fold.
    assert written["method"] == summary["method"] == "linear_probe"
    assert [fold["method"] for fold in written["folds"]] == ["linear_probe", "linear_probe"]
    assert read_run_info(tmp_path / "cv" / "fold_1")["method"] == "linear_probe"


def test_folds_keep_patients_together_and_never_use_the_test_split(tmp_path, tiny_png):
    for split, patients in (("train", range(6)), ("test", range(6, 8))):
        for p in patients:
            for cls, colour in (("normal", (200, 200, 200)), ("pneumonia", (90, 90, 90))):
                for view in range(2):
                    tiny_png(tmp_path / split / cls / f"P{p}_{view}.png", colour)
    dataset = apply_group_regex(load_dataset(tmp_path), r"^(P\d+)_")
    folds = cv_folds(dataset, 3, seed=0)
    assert len(folds) == 3
    test = {i for i, s in enumerate(dataset.samples) if s.split == "test"}
    for train, held in folds:
        assert not (set(train) | set(held)) & test
        groups = lambda idx: {dataset.samples[i].group for i in idx}  # noqa: E731
        assert not groups(train) & groups(held)


def test_resume_from_with_cross_validation_is_refused(tmp_path, tiny_clip_dir):
    cfg = _probe_config(tmp_path / "data", tmp_path / "cv", tiny_clip_dir)
    cfg.resume_from = str(tmp_path / "old")
    with pytest.raises(ConfigError, match="resume"):
        run_cross_validation(cfg)
