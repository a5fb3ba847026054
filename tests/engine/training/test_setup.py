"""What a run needs before its first step: its folder, device, data, starting model and training method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipstudio.engine.config import PromptConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.models import load_model
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.prompts import DEFAULT_TEMPLATES
from clipstudio.engine.runs.layout import LATEST, STATE_JSON, write_run_info
from clipstudio.engine.training import setup
from clipstudio.engine.training.methods.base import TrainingMethod
from clipstudio.engine.training.methods.contrastive import ContrastiveMethod
from clipstudio.engine.training.methods.linear_probe import LinearProbeMethod


def _fake_run(folder: Path, *, checkpoint: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    write_run_info(folder, {"method": "full", "start_model": "builtin"})
    if checkpoint:
        (folder / LATEST).mkdir()
        (folder / LATEST / STATE_JSON).write_text('{"format": 1, "state": {"step": 1}}', encoding="utf-8")
    return folder


def _build(cfg, *, should_stop=lambda: False):
    device = torch.device("cpu")
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    model = setup.load_start_model(cfg, data.start_spec, device)
    method = setup.build_method(
        cfg, model, data, callback=lambda e: None, should_stop=should_stop, device=device
    )
    return data, method


# --- the run folder ----------------------------------------------------------------------------------


def test_a_new_output_folder_is_created(tmp_path, class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir, output=str(tmp_path / "new" / "run"))
    run_dir, resume = setup.prepare_run_dir(cfg)
    assert run_dir == tmp_path / "new" / "run" and run_dir.is_dir() and resume is None


def test_a_finished_run_is_never_overwritten_but_can_be_resumed(
    tmp_path, class_data, tiny_clip_dir, make_cfg
):
    run = _fake_run(tmp_path / "run", checkpoint=True)
    cfg = make_cfg(class_data, tiny_clip_dir, output=str(run))
    with pytest.raises(ConfigError, match="already holds a training run"):
        setup.prepare_run_dir(cfg)
    cfg.resume_from = str(run)
    assert setup.prepare_run_dir(cfg) == (run, run)


def test_a_run_that_ended_before_its_first_checkpoint_starts_afresh(
    tmp_path, class_data, tiny_clip_dir, make_cfg
):
    run = _fake_run(tmp_path / "run", checkpoint=False)
    cfg = make_cfg(class_data, tiny_clip_dir, output=str(run))
    assert setup.prepare_run_dir(cfg) == (run, None)


def test_bad_output_and_resume_folders_are_user_errors(tmp_path, class_data, tiny_clip_dir, make_cfg):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file"):
        setup.prepare_run_dir(make_cfg(class_data, tiny_clip_dir, output=str(tmp_path / "file")))
    with pytest.raises(ConfigError, match="not a training run folder"):
        setup.prepare_run_dir(make_cfg(class_data, tiny_clip_dir, resume_from=str(tmp_path)))


def test_an_explicit_cpu_device_is_used_as_given(class_data, tiny_clip_dir, make_cfg):
    assert setup.training_device(make_cfg(class_data, tiny_clip_dir)) == torch.device("cpu")


# --- data --------------------------------------------------------------------------------------------


def test_training_data_holds_out_validation_images_and_notes_the_counts(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir)
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    assert data.kind == "classes" and data.start_spec == str(tiny_clip_dir)
    assert len(data.train_indices) + len(data.val_indices) == 18 and data.val_indices
    assert not set(data.train_indices) & set(data.val_indices)
    assert data.notes == [
        f"{len(data.train_indices)} images to train on and {len(data.val_indices)} to validate on, with class labels."
    ]


def test_training_texts_come_from_the_configured_prompts(class_data, tiny_clip_dir, make_cfg, tmp_path):
    cfg = make_cfg(class_data, tiny_clip_dir)
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    assert data.prompts.templates == list(DEFAULT_TEMPLATES) and data.prompts.class_texts == {}

    texts = tmp_path / "texts.json"
    texts.write_text('{"red": "a red square"}', encoding="utf-8")
    cfg.prompts = PromptConfig(templates=["an x-ray of {class_name}"], class_texts=str(texts))
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    assert data.prompts.templates == ["an x-ray of {class_name}"]
    assert data.prompts.class_texts == {"red": ["a red square"]}


def test_a_config_without_a_dataset_is_refused(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir)
    cfg.data.path = ""
    with pytest.raises(ConfigError, match="data.path is empty"):
        setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)


def test_resuming_with_other_classes_is_refused(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir)
    info = {"start_model": "builtin", "class_names": ["cat", "dog"]}
    with pytest.raises(ConfigError, match="classes differ"):
        setup.load_training_data(
            cfg, load_dataset(class_data), train_indices=None, val_indices=None, resume_info=info
        )


def test_fewer_than_two_training_images_is_a_data_error(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir)
    with pytest.raises(DataError, match="at least 2 training images"):
        setup.load_training_data(cfg, None, train_indices=[0], val_indices=[1, 2], resume_info=None)


def test_the_recorded_config_names_the_model_training_started_from(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir)
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    data.start_spec = "builtin"  # as when resuming a run that started from the built-in model
    assert setup.recorded_config(cfg, data).model.spec == "builtin"
    assert cfg.model.spec == str(tiny_clip_dir)


# --- the starting model and the method --------------------------------------------------------------


def test_a_linear_probe_run_cant_be_a_starting_model(trained, class_data, make_cfg):
    cfg = make_cfg(class_data, trained["probe"])
    assert isinstance(load_model(str(trained["probe"]), device="cpu"), LinearProbeModel)
    with pytest.raises(ConfigError, match="linear-probe run"):
        setup.load_start_model(cfg, str(trained["probe"]), torch.device("cpu"))


def test_a_fine_tuned_run_is_a_starting_model(trained, class_data, make_cfg):
    cfg = make_cfg(class_data, trained["full"])
    model = setup.load_start_model(cfg, str(trained["full"]), torch.device("cpu"))
    assert model.kind == "hf_clip"


@pytest.mark.parametrize(
    ("method", "cls", "smallest"),
    [
        ("full", ContrastiveMethod, 2),
        ("lock_text", ContrastiveMethod, 2),
        ("linear_probe", LinearProbeMethod, 1),
    ],
)
def test_build_method_gives_a_complete_training_method(
    class_data, tiny_clip_dir, make_cfg, method, cls, smallest
):
    data, built = _build(make_cfg(class_data, tiny_clip_dir, method=method))
    assert isinstance(built, cls) and isinstance(built, TrainingMethod)
    assert built.min_batch_size == smallest and built.notes == []
    assert built.n_train == len(data.train_indices) and built.n_val == len(data.val_indices)
    assert sorted(built.used_train) == sorted(data.train_indices)
    assert built.micro_batches_per_epoch >= 1 and built.trainable()


@pytest.mark.parametrize("method", ["full", "linear_probe"])
def test_unreadable_images_are_left_out_with_a_note(class_data, tiny_clip_dir, make_cfg, method):
    (class_data / "red" / "broken.png").write_bytes(b"not a png")
    data, built = _build(make_cfg(class_data, tiny_clip_dir, method=method))
    assert built.n_train + built.n_val == len(data.train_indices) + len(data.val_indices) - 1
    assert len(built.notes) == 1 and "broken.png" in built.notes[0]


@pytest.mark.parametrize("method", ["full", "linear_probe"])
def test_stopping_while_images_are_read_builds_no_method(class_data, tiny_clip_dir, make_cfg, method):
    _, built = _build(make_cfg(class_data, tiny_clip_dir, method=method), should_stop=lambda: True)
    assert built is None
