"""The training image size: small images train at 112 px on the CPU, announced and kept by the run."""

from __future__ import annotations

import pytest
import torch

from clipstudio.engine.events import MessageLogged
from clipstudio.engine.models import load_run_model
from clipstudio.engine.runs.layout import read_run_config, read_run_info
from clipstudio.engine.training import setup
from clipstudio.engine.training.image_size import choose_image_size, median_short_side
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_data import write_png
from tests.fixtures_models import build_tiny_dual

CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def dual_224_dir(tmp_path_factory):
    """A tiny CNN model whose own input size is 224 px, like the built-in model's."""
    return build_tiny_dual(tmp_path_factory.mktemp("dual_224"), image_size=224)


def test_small_images_on_the_cpu_train_at_112_px_and_say_why():
    choice = choose_image_size(None, 224, device=CPU, resizable=True, source_side=28)
    assert (choice.size, choice.automatic) == (112, True)
    assert "Training at 112 px instead of the model's 224 px" in choice.note
    assert "28 px" in choice.note


@pytest.mark.parametrize(
    "device, resizable, source_side, native",
    [
        (GPU, True, 28, 224),  # a GPU keeps the model's own size
        (CPU, True, 512, 224),  # large images keep it too
        (CPU, True, None, 224),  # no image could be measured
        (CPU, False, 28, 224),  # a ViT takes one input size only
        (CPU, True, 28, 64),  # the model's own size is already small
    ],
)
def test_the_model_keeps_its_own_size_otherwise(device, resizable, source_side, native):
    choice = choose_image_size(None, native, device=device, resizable=resizable, source_side=source_side)
    assert (choice.size, choice.automatic, choice.note) == (native, False, "")


def test_an_image_size_the_user_sets_always_wins():
    for requested in (224, 64):
        choice = choose_image_size(requested, 224, device=CPU, resizable=True, source_side=28)
        assert (choice.size, choice.automatic) == (requested, False)


def test_the_source_size_is_the_median_shorter_side_and_unreadable_files_are_skipped(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", size=side) for i, side in enumerate((20, 28, 28, 300))]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert median_short_side([*paths, broken]) == 28
    assert median_short_side([broken]) is None and median_short_side([]) is None


def test_a_run_trained_at_the_automatic_size_records_it_and_reloads_at_it(
    class_data, dual_224_dir, make_cfg, recorder
):
    cfg = make_cfg(class_data, dual_224_dir, epochs=1)  # 8-px images, img_size left empty, on the CPU

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed", result.message
    notes = [e.text for e in recorder.of(MessageLogged) if "px" in e.text]
    assert len(notes) == 1 and notes[0].startswith("Training at 112 px instead of the model's 224 px")
    assert cfg.img_size is None  # the caller's config is left as it was
    # Resumes read the run's config: they train at 112 px on any device.
    assert read_run_config(result.run_dir).img_size == 112
    assert read_run_info(result.run_dir)["img_size"] == 112
    for which in ("best", "latest"):
        model = load_run_model(result.run_dir, which, device="cpu")
        assert model.image_input_spec().size == 112  # predictions, eval and retrieval see 112-px images


def test_an_explicit_size_trains_at_that_size_without_a_note(class_data, dual_224_dir, make_cfg, recorder):
    cfg = make_cfg(class_data, dual_224_dir, epochs=1, img_size=48)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed", result.message
    assert not [e for e in recorder.of(MessageLogged) if "px" in e.text]
    assert read_run_info(result.run_dir)["img_size"] == 48
    assert load_run_model(result.run_dir, device="cpu").image_input_spec().size == 48


def test_resuming_a_run_without_a_recorded_size_keeps_the_models_own(class_data, dual_224_dir, make_cfg, tmp_path):
    # Runs from before the automatic size trained at the model's own size: a resume must not switch.
    cfg = make_cfg(class_data, dual_224_dir, resume_from=str(tmp_path / "older_run"))
    data = setup.load_training_data(cfg, None, train_indices=None, val_indices=None, resume_info=None)
    model = setup.load_start_model(cfg, data.start_spec, CPU)

    setup.build_method(cfg, model, data, callback=lambda e: None, should_stop=lambda: False, device=CPU)

    assert (data.image_size.size, data.image_size.automatic) == (224, False)
