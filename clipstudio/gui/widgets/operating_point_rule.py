"""How a binary task's threshold is chosen on the validation images: Youden's J or a target rate.

``OperatingPointRuleChooser`` spells its choice as ``EvalConfig.operating_point`` does ("youden",
"sensitivity=0.95", "specificity=0.9"), the same rule ``clipstudio zeroshot/eval --operating-point``
takes; the screen hands it to ``engine.evaluation.clinical_scoring.with_operating_point``.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

YOUDEN, SENSITIVITY, SPECIFICITY = "youden", "sensitivity", "specificity"
DEFAULT_TARGET = 0.95
# The engine's rule names (OperatingPoint.rule) -> the chooser's.
_FROM_ENGINE = {"youden": YOUDEN, "target_sensitivity": SENSITIVITY, "target_specificity": SPECIFICITY}
RULE_TIP = (  # rich text, so the tooltip wraps instead of running across the screen
    "<p>How the threshold is chosen. It is always chosen on the validation images, never on the images the "
    "figures are reported on.</p>"
    "<p><b>Best balance (Youden's J)</b>: the threshold where sensitivity + specificity is highest.<br>"
    "<b>Sensitivity at least X</b>: misses at most 1 - X of the positive cases (e.g. 95 % catches 19 in 20), "
    "at the cost of more false alarms; suits ruling a condition out.<br>"
    "<b>Specificity at least X</b>: raises at most 1 - X false alarms among the negative cases, at the cost "
    "of missing more; suits confirming a condition.</p>"
    "<p>The slider then starts at that threshold; the figures below show what it does on the report images.</p>"
)


class OperatingPointRuleChooser(QWidget):
    """A rule box and, for the target rules, the target rate in percent; ``rule_chosen`` on a change."""

    rule_chosen = Signal(str)  # "youden", "sensitivity=0.95", "specificity=0.9"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rule_combo = QComboBox()
        self.rule_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # never cut off
        self.rule_combo.addItem("Best balance (Youden's J)", YOUDEN)
        self.rule_combo.addItem("Sensitivity at least", SENSITIVITY)
        self.rule_combo.addItem("Specificity at least", SPECIFICITY)
        self.target_spin = QDoubleSpinBox()
        self.target_spin.setRange(50.0, 99.9)
        self.target_spin.setDecimals(1)
        self.target_spin.setSingleStep(1.0)
        self.target_spin.setSuffix(" %")
        self.target_spin.setValue(100 * DEFAULT_TARGET)
        self.target_spin.setKeyboardTracking(False)  # typing "90" is one choice, not "9" then "90"
        for widget in (self.rule_combo, self.target_spin):
            widget.setToolTip(RULE_TIP)
        label = QLabel("Threshold chosen by")
        label.setToolTip(RULE_TIP)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label)
        layout.addWidget(self.rule_combo)
        layout.addWidget(self.target_spin)
        layout.addStretch(1)
        self.rule_combo.currentIndexChanged.connect(self._on_changed)
        self.target_spin.valueChanged.connect(self._on_changed)
        self._sync_target()

    def rule(self) -> str:
        """The choice as ``EvalConfig.operating_point`` spells it."""
        kind = self.rule_combo.currentData()
        if kind == YOUDEN:
            return YOUDEN
        return f"{kind}={round(self.target_spin.value() / 100, 4):g}"

    def show_rule(self, engine_rule: str, target: float | None) -> None:
        """Show the rule a point was chosen by (``OperatingPoint.rule``/``target``) without emitting;
        a hand-set ("fixed") point leaves the choice as it is."""
        kind = _FROM_ENGINE.get(engine_rule)
        if kind is None:
            return
        self.blockSignals(True)
        self.rule_combo.setCurrentIndex(self.rule_combo.findData(kind))
        if target is not None:
            self.target_spin.setValue(100 * target)
        self.blockSignals(False)
        self._sync_target()

    def _sync_target(self) -> None:
        self.target_spin.setEnabled(self.rule_combo.currentData() != YOUDEN)

    def _on_changed(self, *_args) -> None:
        self._sync_target()
        self.rule_chosen.emit(self.rule())


__all__ = ["OperatingPointRuleChooser"]
