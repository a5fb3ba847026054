"""The one training entry: a run, a cross-validation or a sweep, decided by the config and a sweep file."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.config import CrossValConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.events import TrainEnded, TrainingStatus
from clipstudio.engine.prompts import load_class_texts
from clipstudio.engine.runs.layout import (
    CLASS_TEXTS_FILE,
    CV_SUMMARY_FILE,
    SWEEP_SUMMARY_JSON,
    fold_dir,
    is_run_folder,
    read_run_config,
    read_run_info,
    runs_root,
    sweep_run_dir,
)
from clipstudio.engine.training.launch import TrainingKind, train, training_kind


def _probe(make_cfg, class_data, tiny_clip_dir, **overrides):
    settings = dict(method="linear_probe", epochs=1, learning_rate=0.1, warmup_steps=0)
    return make_cfg(class_data, tiny_clip_dir, **(settings | overrides))


def test_a_plain_config_trains_one_run(class_data, tiny_clip_dir, make_cfg, recorder):
    cfg = _probe(make_cfg, class_data, tiny_clip_dir)
    outcome = train(cfg, callbacks=[recorder], dataset=load_dataset(class_data))
    assert outcome.kind is TrainingKind.RUN and outcome.summary is None
    assert outcome.run.status is TrainingStatus.COMPLETED
    assert outcome.run_dir == outcome.run.run_dir and is_run_folder(outcome.run_dir)
    assert [e.status for e in recorder.of(TrainEnded)] == [TrainingStatus.COMPLETED]


@pytest.mark.slow
def test_hand_written_class_texts_are_kept_in_the_run_folder_and_used(class_data, tiny_clip_dir, make_cfg):
    cfg = _probe(make_cfg, class_data, tiny_clip_dir, output="")
    texts = {"red": ["a bright red square"]}
    outcome = train(cfg, class_texts=texts)
    run = outcome.run_dir
    assert run.parent == runs_root() and run.name.endswith("-linear_probe")  # the default folder
    assert load_class_texts(run / CLASS_TEXTS_FILE) == texts
    assert read_run_config(run).prompts.class_texts == str(run / CLASS_TEXTS_FILE)
    assert read_run_info(run)["class_texts"]["red"] == ["a bright red square"]
    assert cfg.output == "" and cfg.prompts.class_texts is None  # the caller's config is untouched


@pytest.mark.slow  # one training run per fold
def test_use_cv_makes_it_a_cross_validation_with_the_class_texts_in_every_fold(
    class_data, tiny_clip_dir, make_cfg
):
    cfg = _probe(make_cfg, class_data, tiny_clip_dir, name="cv", cv=CrossValConfig(use_cv=True, n_splits=2))
    assert training_kind(cfg) is TrainingKind.CROSS_VALIDATION
    outcome = train(cfg, class_texts={"green": ["a green square"]})
    assert outcome.kind is TrainingKind.CROSS_VALIDATION and outcome.run is None
    assert (outcome.run_dir / CV_SUMMARY_FILE).is_file() and outcome.summary["complete"] is True
    for fold in (1, 2):
        assert read_run_info(fold_dir(outcome.run_dir, fold))["class_texts"]["green"] == ["a green square"]


@pytest.mark.slow  # one training run per config
def test_a_sweep_file_makes_it_a_sweep_over_the_config(tmp_path, class_data, tiny_clip_dir, make_cfg):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps([{"learning_rate": 0.05}, {"learning_rate": 0.2}]), encoding="utf-8")
    cfg = _probe(make_cfg, class_data, tiny_clip_dir, name="sweep")
    assert training_kind(cfg, sweep) is TrainingKind.SWEEP
    outcome = train(cfg, sweep=sweep)
    assert outcome.kind is TrainingKind.SWEEP and (outcome.run_dir / SWEEP_SUMMARY_JSON).is_file()
    assert [r["status"] for r in outcome.summary["runs"]] == ["completed", "completed"]
    assert read_run_config(sweep_run_dir(outcome.run_dir, 2)).learning_rate == 0.2


def test_a_sweep_refuses_an_already_read_dataset(tmp_path, class_data, tiny_clip_dir, make_cfg):
    cfg = _probe(make_cfg, class_data, tiny_clip_dir)
    with pytest.raises(ValueError, match="sweep"):
        train(cfg, sweep=tmp_path / "sweep.json", dataset=load_dataset(class_data))
