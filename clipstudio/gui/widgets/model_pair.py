"""The Compare tab: any two models on the same report images, paired.

The user picks model A and model B (a training run, or the model a run started from, or the current
model) and presses Compare; the screen scores both and hands the payload to ``show_comparison``:
each model's figures side by side in the Before/after tab's ``BeforeAfterTable``, and the paired
comparison (``engine.evaluation.paired``) in plain lines from ``paired_summary``, the same words the
Before/after tab uses.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from clipstudio.gui.help import explain
from clipstudio.gui.widgets.run_comparison import BeforeAfterTable

HEADERS = ["Metric", "A", "B", "Change"]  # the change is B minus A, as the lines above say


def paired_summary(paired: dict, a_label: str = "the starting model", b_label: str = "the fine-tuned model") -> str:
    """A paired comparison (``PairedComparison.to_dict()``) in plain lines: each difference B - A with its
    CI and verdict, and McNemar's test. ``a_label``/``b_label`` name the two models in the sentences."""
    lines = [f"Same {paired['n']} images, {paired['b']} minus {paired['a']} (paired bootstrap 95% CI):"]
    for key, label in (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("macro_auc", "AUC")):
        block = paired[key]
        diff = block["difference"]
        if diff.get("value") is None:
            lines.append(f"{label}: {block['verdict']}")
            continue
        ci = diff.get("ci95")
        interval = f" ({100 * ci[0]:+.1f} to {100 * ci[1]:+.1f} points)" if ci else ""
        lines.append(f"{label}: {100 * diff['value']:+.1f} points{interval}. {block['verdict']}")
    m = paired["mcnemar"]
    lines.append(f"McNemar's test: p = {m['p_value']:.3g} ({m['only_b_right']} images only {b_label} gets right, "
                 f"{m['only_a_right']} only {a_label}).")
    return "\n".join(lines)


class ModelPairView(QWidget):
    """Two model boxes, a Compare button, the paired comparison and the side-by-side table."""

    compare_requested = Signal(object, object)  # the item data of model A and model B

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel("Any two models on the same report images: two training runs, or a run and the model it "
                       "started from. A difference is only called real when its 95 % interval leaves out 0.")
        intro.setWordWrap(True)
        self.a_combo, self.b_combo = QComboBox(), QComboBox()
        for combo in (self.a_combo, self.b_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumContentsLength(24)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self._on_compare_clicked)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)  # run names come from folder names
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = BeforeAfterTable()
        self.table.setHorizontalHeaderLabels(HEADERS)
        pick = QGridLayout()
        pick.addWidget(QLabel("Model A"), 0, 0)
        pick.addWidget(self.a_combo, 0, 1)
        pick.addWidget(QLabel("Model B"), 1, 0)
        pick.addWidget(self.b_combo, 1, 1)
        pick.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(explain("paired_comparison", self.summary_label))
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(pick)
        layout.addLayout(buttons)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table, 1)

    def set_choices(self, choices: list[tuple[str, object]], a: object = None, b: object = None) -> None:
        """Offer ``choices`` (label, data) in both boxes; select ``a`` and ``b`` where offered, else keep
        the current selection, else the first two."""
        for combo, wanted, fallback in ((self.a_combo, a, 0), (self.b_combo, b, 1)):
            keep = wanted if wanted is not None else combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for label, data in choices:
                combo.addItem(label, data)
            index = next((i for i, (_, data) in enumerate(choices) if data == keep), -1)
            combo.setCurrentIndex(index if index >= 0 else min(fallback, len(choices) - 1))
            combo.blockSignals(False)
        self.compare_button.setEnabled(len(choices) >= 2)
        if len(choices) < 2:
            self.set_status("Train a model first (or open a run with File > Open run…): there is nothing to "
                            "compare yet.")

    def set_status(self, text: str) -> None:
        self.summary_label.setText(text)

    def clear(self) -> None:
        self.table.setRowCount(0)

    def show_comparison(self, payload: dict) -> None:
        """``payload``: ``a_label``, ``b_label``, ``a`` and ``b`` (zero-shot payloads), ``paired``."""
        a_label, b_label = payload["a_label"], payload["b_label"]
        where = f" on the {payload['part']}" if payload.get("part") else ""
        self.set_status(f"A: {a_label}\nB: {b_label}{where}\n\n" + paired_summary(payload["paired"], "A", "B"))
        self.table.show_payloads(payload["a"], payload["b"])

    def _on_compare_clicked(self) -> None:
        a, b = self.a_combo.currentData(), self.b_combo.currentData()
        if a is None or b is None:
            return
        if a == b:
            self.set_status("Pick two different models: A and B are the same.")
            return
        self.compare_requested.emit(a, b)


__all__ = ["ModelPairView", "paired_summary"]
