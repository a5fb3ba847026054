"""Split settings for training: val/test fractions, the split seed and a patient (group) pattern.

The values go to ``AppState.split_settings`` (the keys of ``DataConfig``) as soon as they are
valid; "Apply" previews the resulting split sizes in a worker, with the same function training
uses (``engine.data.splits.train_val_indices``), so the preview can't disagree with the run. Tooltips are
the ``DataConfig`` help texts. Cross-validation is a training setting (the Train screen's form).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.config import DataConfig, help_for
from clipstudio.engine.data import Dataset
from clipstudio.engine.data.splits import apply_group_regex, train_val_indices

GROUP_COUNT_DELAY_MS = 250
_DEFAULTS = DataConfig()


def split_situation(dataset: Dataset | None) -> str:
    """One sentence on which settings apply to this dataset's own splits."""
    if dataset is None:
        return "Open a dataset to preview its splits."
    names = dataset.split_names()
    if not names:
        return (
            "This dataset has no split folders: these settings decide which images train, "
            "which validate and which are held out for testing."
        )
    listed = ", ".join(names)
    if "val" in names:
        return (
            f"This dataset comes with its own splits ({listed}), so the fractions are not used: "
            "its folders decide which images train, validate and test. The group pattern still applies."
        )
    return (
        f"This dataset comes with its own splits ({listed}) but no validation split, so the validation "
        "fraction of its training images is held out for validation. There is no test fraction to set: "
        "the dataset's own split decides which images are for testing."
    )


def fractions_used(dataset: Dataset | None) -> tuple[bool, bool]:
    """Whether the (validation, test) fractions change anything for this dataset (as ``train_val_indices``)."""
    names = dataset.split_names() if dataset is not None else []
    if not names:
        return True, True
    return "val" not in names, False


def count_groups(dataset: Dataset, pattern: str) -> tuple[int, int]:
    """(distinct groups, images whose file name matches) for a group regex; raises re.error."""
    regex = re.compile(pattern)
    groups: Counter[str] = Counter()
    for sample in dataset.samples:
        found = regex.search(sample.path.name)
        if found:
            groups[(found.group(1) if regex.groups else found.group(0)) or ""] += 1
    return len(groups), sum(groups.values())


def preview_splits(dataset: Dataset, settings: dict[str, Any]) -> dict[str, Any]:
    """Split sizes (train, val, held out) training would use; runs in a worker."""
    if settings.get("group_regex"):
        dataset = apply_group_regex(dataset, settings["group_regex"])
    train, val = train_val_indices(
        dataset, val_fraction=settings["val_fraction"], test_fraction=settings["test_fraction"], seed=settings["seed"]
    )
    return {
        "train": len(train),
        "val": len(val),
        "held_out": len(dataset) - len(train) - len(val),
    }


class SplitSettingsPanel(QWidget):
    """Edits ``AppState.split_settings``; ``apply_requested`` asks the screen to run the preview."""

    settings_changed = Signal(dict)
    apply_requested = Signal(dict)

    def __init__(self, settings: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset: Dataset | None = None
        self.situation = QLabel(split_situation(None))
        self.situation.setWordWrap(True)

        self.val_fraction = QDoubleSpinBox()
        self.test_fraction = QDoubleSpinBox()
        for box in (self.val_fraction, self.test_fraction):
            box.setRange(0.0, 0.9)
            box.setSingleStep(0.05)
            box.setDecimals(2)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.group_regex = QLineEdit()
        self.group_regex.setPlaceholderText(r"e.g. ^(P\d+)_  (first capture group = patient id)")
        for name in ("val_fraction", "test_fraction", "seed", "group_regex"):
            getattr(self, name).setToolTip(help_for(DataConfig, name))
        self.group_info = QLabel()
        self.group_info.setWordWrap(True)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setStyleSheet("color: #b3261e;")
        self.error.setWordWrap(True)
        self.error.hide()

        self.apply_button = QPushButton("Apply && preview")
        self.apply_button.clicked.connect(self._on_apply_button_clicked)
        self.apply_button.setEnabled(False)
        self.result = QLabel()
        self.result.setWordWrap(True)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        for box in (self.val_fraction, self.test_fraction, self.seed):
            box.setMinimumWidth(110)
        self.group_regex.setMinimumWidth(320)
        self.group_info.setMinimumWidth(320)
        form.addRow("Validation fraction", self.val_fraction)
        form.addRow("Test fraction", self.test_fraction)
        form.addRow("Split seed", self.seed)
        form.addRow("Patient / group pattern", self.group_regex)
        form.addRow("", self.group_info)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.situation)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        layout.addStretch(1)

        self.set_settings(settings)
        self._group_timer = QTimer(self)
        self._group_timer.setSingleShot(True)
        self._group_timer.setInterval(GROUP_COUNT_DELAY_MS)
        self._group_timer.timeout.connect(self._update_groups)
        for box in (self.val_fraction, self.test_fraction, self.seed):
            box.valueChanged.connect(self._on_value_changed)
        self.group_regex.textChanged.connect(self._on_group_regex_text_changed)

    # --- public ------------------------------------------------------------------------------------
    def set_settings(self, settings: dict[str, Any]) -> None:
        self.val_fraction.setValue(float(settings.get("val_fraction", _DEFAULTS.val_fraction)))
        self.test_fraction.setValue(float(settings.get("test_fraction", _DEFAULTS.test_fraction)))
        self.seed.setValue(int(settings.get("seed", _DEFAULTS.seed)))
        self.group_regex.setText(settings.get("group_regex") or "")

    def set_dataset(self, dataset: Dataset | None) -> None:
        self._dataset = dataset
        self.situation.setText(split_situation(dataset))
        for box, used, name in zip((self.val_fraction, self.test_fraction), fractions_used(dataset),
                                   ("val_fraction", "test_fraction"), strict=True):
            box.setEnabled(used)
            why = "" if used else "\n\nNot used for this dataset: it comes with its own splits."
            box.setToolTip(help_for(DataConfig, name) + why)
        self.result.clear()
        self._update_groups()

    def settings(self) -> dict[str, Any]:
        return {
            "val_fraction": round(self.val_fraction.value(), 4),
            "test_fraction": round(self.test_fraction.value(), 4),
            "seed": self.seed.value(),
            "group_regex": self.group_regex.text().strip() or None,
        }

    def validation_error(self) -> str:
        """The sentence explaining why the settings can't be used, or ""."""
        s = self.settings()
        if s["val_fraction"] + s["test_fraction"] >= 1:
            return "Validation + test fractions must be below 1 to leave images for training."
        if s["group_regex"]:
            try:
                re.compile(s["group_regex"])
            except re.error as exc:
                return f"Invalid group pattern: {exc}."
        return ""

    def show_result(self, preview: dict[str, Any]) -> None:
        text = (
            f"Training uses <b>{preview['train']:,}</b> images, validation <b>{preview['val']:,}</b>, "
            f"held out (test / unused) <b>{preview['held_out']:,}</b>."
        )
        self.result.setText(text)

    def show_busy(self, busy: bool) -> None:
        self.apply_button.setEnabled(not busy and self._dataset is not None and not self.validation_error())
        if busy:
            self.result.setText("Computing splits…")

    # --- slots -------------------------------------------------------------------------------------
    def _on_value_changed(self, *_args) -> None:
        self._publish()

    def _on_group_regex_text_changed(self, _text: str) -> None:
        self._publish()
        self._group_timer.start()

    def _on_apply_button_clicked(self) -> None:
        if not self.validation_error():
            self.apply_requested.emit(self.settings())

    def _publish(self) -> None:
        message = self.validation_error()
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.apply_button.setEnabled(not message and self._dataset is not None)
        if not message:
            self.settings_changed.emit(self.settings())

    def _update_groups(self) -> None:
        pattern = self.group_regex.text().strip()
        if not pattern:
            self.group_info.setText("No pattern: every image is its own group.")
            return
        if self._dataset is None:
            self.group_info.setText("")
            return
        try:
            n_groups, n_matched = count_groups(self._dataset, pattern)
        except re.error:
            self.group_info.setText("")  # the error line already says why
            return
        n = len(self._dataset)
        unmatched = (
            f"; {n - n_matched:,} file names don't match (each its own group)" if n_matched < n else ""
        )
        self.group_info.setText(f"{n_groups:,} groups found in {n_matched:,} of {n:,} images{unmatched}.")
