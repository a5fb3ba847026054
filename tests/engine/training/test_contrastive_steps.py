"""``TrainConfig.steps``: a step budget spread over the epochs, each epoch going over the images as often as it takes."""

from __future__ import annotations

from clipstudio.engine.events import TrainStarted
from clipstudio.engine.runs.layout import read_history
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_runs import stop_after_two_epochs_and_resume


def test_steps_are_spread_over_the_epochs(class_data, tiny_dual_dir, make_cfg, recorder):
    # 12 training images in batches of 8: one pass is 2 steps; 9 steps over 3 epochs is 3 steps per epoch.
    cfg = make_cfg(class_data, tiny_dual_dir, method="lora", epochs=3, steps=9)

    result = Trainer(cfg, callbacks=[recorder]).fit()

    assert result.status == "completed"
    [started] = recorder.of(TrainStarted)
    assert (started.steps_per_epoch, started.total_steps) == (3, 9)
    assert read_history(result.run_dir)["epoch"] == [1, 2, 3]  # validated once per epoch


def test_a_run_with_a_step_budget_resumes_exactly(class_data, tiny_dual_dir, make_cfg, tmp_path):
    # Passes over the images straddle the epochs (3 steps per epoch, 2 per pass): a resume continues mid-pass.
    cfg = make_cfg(class_data, tiny_dual_dir, method="lora", epochs=3, steps=9, save_best=True)

    whole, resumed = stop_after_two_epochs_and_resume(cfg, tmp_path)

    assert read_history(resumed.run_dir)["train_loss"] == read_history(whole.run_dir)["train_loss"]
    assert resumed.best_metric == whole.best_metric
