"""The training form: jargon behind "Advanced settings", and the preset and expander remembered on restart."""

from __future__ import annotations

from clipstudio.engine.config import TrainConfig
from clipstudio.gui.widgets.train_form import CUSTOM, PRESETS, TrainForm

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
    again = _form(qtbot)
    assert again.preset.currentText() == CUSTOM
    assert again.to_config() == TrainConfig()  # Custom starts from the documented defaults


def test_gradient_accumulation_is_a_form_setting(qtbot):
    form = _form(qtbot)
    form.grad_accum.setValue(4)
    assert form.to_config().grad_accum == 4
    cfg = TrainConfig(grad_accum=2)
    form.set_config(cfg)
    assert form.grad_accum.value() == 2
