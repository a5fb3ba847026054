"""Method "auto": picks the method from the training images per class, says why, and the run records the pick."""

from __future__ import annotations

import pytest

from clipstudio.engine.events import MethodChosen, TrainStarted
from clipstudio.engine.runs.layout import read_run_config, read_run_info
from clipstudio.engine.training.methods.auto import FULL_FINE_TUNE_FROM, choose_method
from clipstudio.engine.training.trainer import Trainer


@pytest.mark.parametrize(
    "counts, method",
    [
        ([1, 1], "linear_probe"),  # one shot per class
        ([16] * 8, "linear_probe"),  # the largest K-shot measured
        ([30, 40, 45, 49], "linear_probe"),  # below the smallest class size where full fine-tuning won
        ([43, 87, 43, 82, 34, 40, 94, 66], "full"),  # the BloodMNIST subset's 480 training images
        ([240, 240], "full"),  # the PneumoniaMNIST subset
        ([3, 150, 150], "full"),  # one rare class does not make the typical class small
        (None, "full"),  # captions, no class labels
    ],
)
def test_auto_picks_the_probe_for_few_images_per_class_and_full_fine_tuning_for_many(counts, method):
    chosen = choose_method(counts)

    assert chosen.method == method
    assert choose_method(counts) == chosen  # deterministic, reason included
    assert chosen.reason.startswith("Auto picked")


def test_the_reason_names_the_typical_class_size_and_the_threshold():
    reason = choose_method([4, 4, 5]).reason

    assert "4 training images" in reason and str(FULL_FINE_TUNE_FROM) in reason


def test_an_auto_run_says_what_it_picked_and_records_the_concrete_method(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    cfg = make_cfg(class_data, tiny_dual_dir, method="auto")  # 3 classes x 4 training images

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    [chosen] = recorder.of(MethodChosen)
    assert chosen.method == "linear_probe" and "4 training images" in chosen.reason
    [started] = recorder.of(TrainStarted)
    assert recorder.events.index(chosen) < recorder.events.index(started)
    assert started.method == "linear_probe"
    # Resume, eval and export read these: they see a concrete method, never "auto".
    assert read_run_config(result.run_dir).method == "linear_probe"
    assert read_run_info(result.run_dir)["method"] == "linear_probe"
    assert cfg.method == "auto"  # the caller's config is left as given


def test_a_concrete_method_is_not_announced(class_data, tiny_dual_dir, make_cfg, recorder):
    cfg = make_cfg(class_data, tiny_dual_dir, method="linear_probe", epochs=1)

    Trainer(cfg, callbacks=[recorder]).fit()

    assert recorder.of(MethodChosen) == []
