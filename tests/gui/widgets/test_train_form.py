"""The training form: jargon behind "Advanced settings", and the preset and expander remembered on restart."""

from __future__ import annotations

from clipstudio.engine.config import TrainConfig
from clipstudio.gui.widgets.train_form import CUSTOM, DEFAULT_PRESET, PRESETS, TrainForm

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


def test_a_fresh_profile_shows_the_default_preset_not_custom(qtbot):
    form = _form(qtbot)
    assert form.preset.currentText() == DEFAULT_PRESET == "Defaults (full fine-tune, 10 epochs)"
    assert form.to_config() == TrainConfig()
    assert DEFAULT_PRESET in form.preset.toolTip()
    form.preset.setCurrentText(QUICK)
    form.preset.setCurrentText(DEFAULT_PRESET)  # choosing it again brings the defaults back
    assert form.to_config() == TrainConfig()


def test_gradient_accumulation_is_a_form_setting(qtbot):
    form = _form(qtbot)
    form.grad_accum.setValue(4)
    assert form.to_config().grad_accum == 4
    cfg = TrainConfig(grad_accum=2)
    form.set_config(cfg)
    assert form.grad_accum.value() == 2


def test_the_linear_probe_shows_its_penalty_choice_and_greys_out_what_it_does_not_use(qtbot):
    form = _form(qtbot)
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
