"""The operating point rule box: Youden's J or a target rate, spelled as the CLI's --operating-point."""

from __future__ import annotations

from clipstudio.engine.config import operating_point_rule
from clipstudio.gui.widgets.operating_point_rule import OperatingPointRuleChooser


def test_the_choice_is_spelled_as_the_cli_takes_it_and_the_target_only_counts_for_targets(qtbot):
    chooser = OperatingPointRuleChooser()
    qtbot.addWidget(chooser)
    chosen = []
    chooser.rule_chosen.connect(chosen.append)
    assert chooser.rule() == "youden" and not chooser.target_spin.isEnabled()

    chooser.rule_combo.setCurrentIndex(chooser.rule_combo.findData("sensitivity"))
    assert chosen[-1] == "sensitivity=0.95" and chooser.target_spin.isEnabled()
    chooser.target_spin.setValue(90.0)
    assert chosen[-1] == "sensitivity=0.9"
    chooser.rule_combo.setCurrentIndex(chooser.rule_combo.findData("specificity"))
    assert chosen[-1] == "specificity=0.9"
    assert operating_point_rule(chosen[-1]) == ("target_specificity", 0.9)  # the engine reads it
    assert "validation images" in chooser.rule_combo.toolTip()


def test_showing_a_stored_rule_does_not_ask_for_a_new_choice(qtbot):
    chooser = OperatingPointRuleChooser()
    qtbot.addWidget(chooser)
    chosen = []
    chooser.rule_chosen.connect(chosen.append)

    chooser.show_rule("target_specificity", 0.975)

    assert chosen == [] and chooser.rule() == "specificity=0.975"
    chooser.show_rule("fixed", None)  # a hand-set threshold leaves the box as it was
    assert chooser.rule() == "specificity=0.975"
