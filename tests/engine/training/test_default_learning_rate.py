"""The learning rate a run uses when it sets none: the model's recommended rate for the method, else the method's."""

from __future__ import annotations

import pytest

from clipstudio.engine.config import BUILTIN_LEARNING_RATES, DEFAULT_LEARNING_RATES, TrainConfig, help_for
from clipstudio.engine.events import MessageLogged
from clipstudio.engine.models import load_model
from clipstudio.engine.runs.layout import read_run_config
from clipstudio.engine.training.trainer import Trainer


def test_the_models_recommended_rate_applies_only_where_the_run_sets_none():
    recommended = {"full": 1e-4}
    assert TrainConfig(method="full").resolved_learning_rate(recommended) == 1e-4
    assert TrainConfig(method="full").resolved_learning_rate() == DEFAULT_LEARNING_RATES["full"] == 1e-5
    assert TrainConfig(method="lora").resolved_learning_rate(recommended) == DEFAULT_LEARNING_RATES["lora"]
    assert TrainConfig(method="full", learning_rate=3e-6).resolved_learning_rate(recommended) == 3e-6


def test_the_help_names_the_built_in_models_full_fine_tuning_rate():
    # CLI --help and the Train form's tooltip read this text.
    assert BUILTIN_LEARNING_RATES["full"] == 1e-4
    assert "(the built-in model: full 0.0001)" in help_for(TrainConfig, "learning_rate")


def _messages(recorder) -> list[str]:
    return [e.text for e in recorder.events if isinstance(e, MessageLogged)]


def test_a_run_without_a_rate_uses_the_models_logs_it_and_records_it(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    model = load_model(str(tiny_dual_dir), device="cpu")
    model.recommended_learning_rates = {"full": 2e-4}
    cfg = make_cfg(class_data, tiny_dual_dir, epochs=1, learning_rate=None)

    result = Trainer(cfg, callbacks=[recorder], model=model).fit()

    assert result.status == "completed", result.message
    assert "Learning rate 0.0002: the model's recommended rate (set a learning rate to change it)." in _messages(
        recorder
    )
    assert read_run_config(result.run_dir).learning_rate == pytest.approx(2e-4)  # a resume keeps it


def test_a_rate_the_user_set_wins_and_a_model_without_one_keeps_the_methods(
    class_data, tiny_dual_dir, make_cfg, recorder
):
    model = load_model(str(tiny_dual_dir), device="cpu")
    model.recommended_learning_rates = {"full": 2e-4}
    cfg = make_cfg(class_data, tiny_dual_dir, name="set", epochs=1, learning_rate=3e-3)
    result = Trainer(cfg, callbacks=[recorder], model=model).fit()
    assert read_run_config(result.run_dir).learning_rate == pytest.approx(3e-3)
    assert not [m for m in _messages(recorder) if m.startswith("Learning rate")]

    plain = make_cfg(class_data, tiny_dual_dir, name="plain", epochs=1, learning_rate=None)
    result = Trainer(plain, callbacks=[recorder]).fit()
    assert read_run_config(result.run_dir).learning_rate == pytest.approx(DEFAULT_LEARNING_RATES["full"])
    assert "Learning rate 1e-05: the method's default (set a learning rate to change it)." in _messages(recorder)


@pytest.mark.slow
def test_the_built_in_model_recommends_its_full_fine_tuning_rate_and_a_hub_clip_none(tiny_clip_dir):
    assert dict(load_model("builtin", device="cpu").recommended_learning_rates) == {"full": 1e-4}
    assert not load_model(str(tiny_clip_dir), device="cpu").recommended_learning_rates
