"""The training form: jargon behind "Advanced settings", and the preset and expander remembered on restart."""

from __future__ import annotations

from PySide6.QtCore import Qt

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.training.presets import QKV_TARGETS
from clipstudio.gui.widgets.train_form import TrainForm
from clipstudio.gui.widgets.train_presets import (
    AUTO_PRESET,
    CLIP_LORA_PRESET,
    CUSTOM,
    DEFAULT_PRESET,
    PRESETS,
)

QUICK = "Quick check (linear probe, 10 epochs)"


def _form(qtbot) -> TrainForm:
    form = TrainForm()
    qtbot.addWidget(form)
    form.show()
    return form


def test_jargon_is_behind_a_closed_advanced_expander_and_the_basics_are_not(qtbot):
    form = _form(qtbot)
    assert not form.advanced_open()
    for name in ("warmup_steps", "weight_decay", "loss", "amp", "grad_accum", "patience", "monitor", "lora_rank"):
        assert not form.field(name).isVisible(), name
    for name in ("preset", "method", "epochs", "batch_size", "learning_rate", "output"):
        assert form.field(name).isVisible(), name
    form.advanced_button.click()
    assert form.weight_decay.isVisible() and form.patience.isVisible()
    assert not form.lora_rank.isVisible()  # LoRA settings only for the LoRA method
    form.method.setCurrentIndex(form.method.findData("lora"))
    assert form.lora_rank.isVisible()


def test_the_expander_state_and_the_preset_survive_a_restart(qtbot):
    form = _form(qtbot)
    form.advanced_button.click()
    form.preset.setCurrentText(QUICK)
    form.close()

    again = _form(qtbot)  # a new window reads the same settings file
    assert again.advanced_open() and again.weight_decay.isVisible()
    assert again.preset.currentText() == QUICK
    assert again.to_config().method == PRESETS[QUICK]["method"]


def test_an_edit_after_a_preset_is_remembered_as_custom(qtbot):
    form = _form(qtbot)
    form.preset.setCurrentText(QUICK)
    form.epochs.setValue(3)
    assert form.preset.currentText() == CUSTOM
    again = _form(qtbot)  # the edit itself is not kept: Custom starts from the documented defaults
    assert again.to_config() == TrainConfig()
    assert again.preset.currentText() == DEFAULT_PRESET


def test_a_fresh_profile_shows_the_auto_preset_and_the_defaults_are_one_click_away(qtbot):
    form = _form(qtbot)
    assert form.preset.currentText() == AUTO_PRESET
    assert form.to_config() == TrainConfig(method="auto")
    assert AUTO_PRESET in form.preset.toolTip() and DEFAULT_PRESET in form.preset.toolTip()
    form.preset.setCurrentText(QUICK)
    form.preset.setCurrentText(DEFAULT_PRESET)  # choosing it brings the documented defaults back
    assert DEFAULT_PRESET == "Defaults (full fine-tune, 10 epochs)"
    assert form.to_config() == TrainConfig()


def test_auto_and_clip_lora_are_offered_with_plain_tooltips(qtbot):
    form = _form(qtbot)
    auto = form.method.findData("auto")
    assert auto == 0 and form.method.itemText(auto).startswith("Auto")
    assert "how many training images each class has" in form.method.itemData(auto, Qt.ItemDataRole.ToolTipRole)
    for preset, words in ((AUTO_PRESET, "pick the method from your data"), (CLIP_LORA_PRESET, "CLIP-LoRA as published")):
        index = form.preset.findText(preset)
        assert index >= 0 and words in form.preset.itemData(index, Qt.ItemDataRole.ToolTipRole)
    form.method.setCurrentIndex(auto)
    assert "linear probe" in form.method_help.text() and "full fine-tuning" in form.method_help.text()


def test_the_clip_lora_preset_fills_the_published_settings_and_a_later_preset_clears_them(qtbot):
    form = _form(qtbot)
    form.advanced_button.click()
    form.preset.setCurrentText(CLIP_LORA_PRESET)

    cfg = form.to_config()
    assert cfg.method == "lora" and (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout) == (2, 1.0, 0.25)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.batch_size, cfg.warmup_steps) == (2e-4, 0.01, 32, 0)
    assert cfg.lora.target_modules == list(QKV_TARGETS) and cfg.steps == 8000
    assert form.lora_targets.isVisible() and "CLIP-LoRA" in form.lora_targets.currentText()
    assert form.steps.isVisible() and form.steps.value() == 8000

    form.lora_rank.setValue(4)  # an edit makes it Custom
    assert form.preset.currentText() == CUSTOM
    form.preset.setCurrentText("Small dataset (LoRA, 10 epochs)")  # the app's own LoRA: none of CLIP-LoRA's values
    cfg = form.to_config()
    assert cfg.method == "lora" and cfg.lora == TrainConfig().lora and cfg.steps is None
    assert (cfg.learning_rate, cfg.weight_decay) == (None, TrainConfig().weight_decay)


def test_the_run_auto_picked_shows_under_the_method(qtbot):
    form = _form(qtbot)
    form.show_auto_choice("Auto picked the linear probe: a typical class has 4 training images.")
    assert form.method_help.text() == "This run: Auto picked the linear probe: a typical class has 4 training images."
    form.method.setCurrentIndex(form.method.findData("full"))
    assert "Both towers learn" in form.method_help.text()


def test_gradient_accumulation_is_a_form_setting(qtbot):
    form = _form(qtbot)
    form.grad_accum.setValue(4)
    assert form.to_config().grad_accum == 4
    cfg = TrainConfig(grad_accum=2)
    form.set_config(cfg)
    assert form.grad_accum.value() == 2


def test_the_linear_probe_shows_its_penalty_choice_and_greys_out_what_it_does_not_use(qtbot):
    form = _form(qtbot)
    form.set_config(TrainConfig(method="full"))
    form.advanced_button.click()
    assert not form.probe_prior.isVisible()
    form.method.setCurrentIndex(form.method.findData("linear_probe"))
    assert form.probe_prior.isVisible() and "logistic regression" in form.method_help.text()
    for name in ("learning_rate", "weight_decay", "warmup_steps", "augmentation"):
        assert not form.field(name).isEnabled(), name
    assert form.to_config().probe.prior == "auto"
    form.probe_prior.setCurrentIndex(form.probe_prior.findData("none"))
    assert form.to_config().probe.prior == "none"
    form.set_config(TrainConfig(method="full"))
    assert form.learning_rate.isEnabled() and not form.probe_prior.isVisible()


def test_tip_adapter_methods_are_listed_explained_and_grey_out_what_they_do_not_use(qtbot):
    from PySide6.QtCore import Qt

    form = _form(qtbot)
    form.advanced_button.click()
    for method in ("tip_adapter", "tip_adapter_f"):
        index = form.method.findData(method)
        assert index >= 0 and "Tip-Adapter" in form.method.itemText(index)
        assert "training images" in form.method.itemData(index, Qt.ItemDataRole.ToolTipRole)
    form.method.setCurrentIndex(form.method.findData("tip_adapter"))
    assert "Nothing trains" in form.method_help.text() and not form.probe_prior.isVisible()
    for name in ("epochs", "learning_rate", "warmup_steps", "augmentation", "amp"):
        assert not form.field(name).isEnabled(), name
    # Tip-Adapter-F trains its cache with AdamW: epochs and the schedule apply, augmentation does not.
    form.method.setCurrentIndex(form.method.findData("tip_adapter_f"))
    for name in ("epochs", "learning_rate", "warmup_steps", "weight_decay"):
        assert form.field(name).isEnabled(), name
    assert not form.field("augmentation").isEnabled()
    assert form.to_config().method == "tip_adapter_f"


def test_layer_wise_decay_is_an_advanced_setting_that_round_trips_and_greys_out_for_the_probe(qtbot):
    form = _form(qtbot)
    form.advanced_button.click()
    form.set_config(TrainConfig(method="full", layer_decay=0.75))
    assert form.layer_decay.isVisible() and form.layer_decay.value() == 0.75
    assert "last layer" in form.layer_decay.toolTip()  # the field's help text, in plain words
    form.layer_decay.setValue(0.85)
    assert form.to_config().layer_decay == 0.85
    form.method.setCurrentIndex(form.method.findData("linear_probe"))
    assert not form.layer_decay.isEnabled()  # the probe solves its head: no layers, no rates
