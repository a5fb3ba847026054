"""The training settings form, bound to ``TrainConfig``: presets, method, schedule, LoRA, early stopping.
The presets are in ``train_presets``, the methods and the drop-downs' options in ``train_choices``.

``set_config(cfg)`` fills the fields, ``to_config(base)`` returns a copy of ``base`` with the form's
values, and ``problem()`` is the ConfigError sentence of the current values ("" when they are valid).
Every tooltip is the help text of the config field (``engine.config.help_for``), as in ``--help``;
jargon fields start it with a plain sentence and have a "What does this mean?" link (``gui.help``).
The jargon settings sit under "Advanced settings", closed until opened; the app remembers whether it
was open, and the preset last chosen.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.config import (
    AUTO_METHOD,
    BUILTIN_LEARNING_RATES,
    CLASS_DATA_METHODS,
    DEFAULT_LEARNING_RATES,
    TrainConfig,
    help_for,
)
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import runs_root
from clipstudio.engine.training.presets import QKV_TARGETS
from clipstudio.gui.help import TERMS, explain_link
from clipstudio.gui.settings import AppSettings
from clipstudio.gui.widgets.train_choices import (
    AUGMENTATIONS,
    LORA_TARGETS,
    LOSSES,
    METHODS,
    MONITORS,
    PROBE_PRIORS,
    SOLVED_METHODS,
)
from clipstudio.gui.widgets.train_presets import (
    AUTO_PRESET,
    CUSTOM,
    DEFAULT_PRESET,
    PRESET_TIPS,
    PRESETS,
    apply_preset_to,
    preset_of,
)

# Form field -> the TrainConfig field(s) it edits; the tooltips are those fields' help texts.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "method": ("method",),
    "epochs": ("epochs",),
    "batch_size": ("batch_size",),
    "steps": ("steps",),
    "learning_rate": ("learning_rate",),
    "warmup_steps": ("warmup_steps",),
    "weight_decay": ("weight_decay",),
    "layer_decay": ("layer_decay",),
    "img_size": ("img_size",),
    "augmentation": ("augmentation",),
    "amp": ("amp",),
    "grad_accum": ("grad_accum",),
    "patience": ("early_stopping.patience",),
    "min_delta": ("early_stopping.min_delta",),
    "monitor": ("early_stopping.monitor",),
    "cv_folds": ("cv.use_cv", "cv.n_splits"),
    "lora_rank": ("lora.rank",),
    "lora_alpha": ("lora.alpha",),
    "lora_dropout": ("lora.dropout",),
    "lora_targets": ("lora.target_modules",),
    "probe_prior": ("probe.prior",),
    "loss": ("loss",),
    "seed": ("seed",),
    "output": ("output",),
}
TOOLTIPS = {
    "preset": (
        'Fill in a tested starting point; any change afterwards makes it "Custom". '
        f'Default: "{AUTO_PRESET}"; "{DEFAULT_PRESET}" holds the documented defaults.'
    ),
    **{name: "\n".join(help_for(TrainConfig, path) for path in paths) for name, paths in FIELD_PATHS.items()},
}
for _name, _term in TERMS.items():  # jargon: a plain sentence first, then the technical help text
    if _name in TOOLTIPS:
        TOOLTIPS[_name] = f"{_term.plain}\n\n{TOOLTIPS[_name]}"
TOOLTIPS["output"] += f"\nThe runs folder: {runs_root()}"
ADVANCED_HINT = "total steps, warm-up, weight decay, loss, precision, LoRA, early stopping"


def _combo(items: dict[str, str]) -> QComboBox:
    box = QComboBox()
    for value, label in items.items():
        box.addItem(label, value)
    return box


def _spin(low: int, high: int, special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    if special:
        box.setSpecialValueText(special)
    return box


def _double(low: float, high: float, decimals: int, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    return box


def _select(box: QComboBox, value: str) -> None:
    index = box.findData(value)
    if index < 0:
        raise ConfigError(f"{value!r} is not one of {[box.itemData(i) for i in range(box.count())]}.")
    box.setCurrentIndex(index)


class TrainForm(QWidget):
    """The training settings. ``changed`` fires on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._applying = False
        # The model's own rates where they differ from the methods' defaults (see set_model_rates).
        self._model_rates: Mapping[str, float] = BUILTIN_LEARNING_RATES
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, CUSTOM])
        for i, name in enumerate(PRESETS):
            self.preset.setItemData(i, PRESET_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.method = _combo({m: label for m, (label, _) in METHODS.items()})
        for i, (_, description) in enumerate(METHODS.values()):
            self.method.setItemData(i, description, Qt.ItemDataRole.ToolTipRole)
        self.method_help = QLabel()
        self.method_help.setWordWrap(True)
        self.method_help.setObjectName("hint")
        self.epochs = _spin(1, 10_000)
        self.batch_size = _spin(1, 4096)
        self.steps = _spin(0, 100_000_000, "one pass per epoch")
        self.learning_rate = QLineEdit()
        self.warmup_steps = _spin(0, 1_000_000)
        self.weight_decay = _double(0.0, 10.0, 4, 0.01)
        self.layer_decay = _double(0.05, 1.0, 2, 0.05)
        self.img_size = _spin(0, 2048, "model default")
        self.augmentation = _combo(AUGMENTATIONS)
        self.amp = QCheckBox("Mixed precision (faster, less memory)")
        self.grad_accum = _spin(1, 1024)
        self.patience = _spin(0, 1000, "off")
        self.min_delta = _double(0.0, 1e6, 4, 0.001)
        self.monitor = _combo(MONITORS)
        self.cv_folds = _spin(0, 20, "off")
        self.lora_rank = _spin(0, 512)
        self.lora_alpha = _double(0.0, 4096.0, 2, 1.0)
        self.lora_dropout = _double(0.0, 0.99, 3, 0.01)
        self.lora_targets = _combo(LORA_TARGETS)
        self._custom_targets: list[str] | None = None  # a config's own target list, shown as "custom"
        self.probe_prior = _combo(PROBE_PRIORS)
        self.loss = _combo(LOSSES)
        self.seed = _spin(0, 2**31 - 1)
        self.output = QLineEdit()
        self.output.setPlaceholderText("Automatic: a new folder in the runs folder")
        self.browse = QPushButton("Browse…")
        self.browse.setToolTip("Choose the run folder (an empty or new folder).")
        self.browse.clicked.connect(self._on_browse_clicked)

        for name, tip in TOOLTIPS.items():
            self.field(name).setToolTip(tip)

        general = QFormLayout()
        self._add_row(general, "Preset", "preset")
        self._add_row(general, "Method", "method")
        general.addRow("", self.method_help)
        self._add_row(general, "Epochs", "epochs")
        self._add_row(general, "Batch size", "batch_size")
        self._add_row(general, "Learning rate", "learning_rate")
        self._add_row(general, "Image size", "img_size")
        self._add_row(general, "Augmentation", "augmentation")

        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setToolTip(f"Show or hide the settings most runs leave at their defaults ({ADVANCED_HINT}).")
        advanced_hint = QLabel(f"({ADVANCED_HINT})")
        advanced_hint.setObjectName("hint")
        advanced_row = QHBoxLayout()
        advanced_row.setContentsMargins(0, 0, 0, 0)
        advanced_row.addWidget(self.advanced_button)
        advanced_row.addWidget(advanced_hint, 1)

        advanced = QFormLayout()
        self._add_row(advanced, "Total steps", "steps")
        self._add_row(advanced, "Warm-up steps", "warmup_steps")
        self._add_row(advanced, "Weight decay", "weight_decay")
        self._add_row(advanced, "Layer-wise LR decay", "layer_decay")
        self._add_row(advanced, "Loss", "loss")
        self._add_row(advanced, "Gradient accumulation", "grad_accum")
        self._add_row(advanced, "", "amp")
        self._add_row(advanced, "Seed", "seed")

        self.lora_group = QGroupBox("LoRA")
        lora = QFormLayout(self.lora_group)
        self._add_row(lora, "Rank", "lora_rank")
        self._add_row(lora, "Alpha", "lora_alpha")
        self._add_row(lora, "Dropout", "lora_dropout")
        self._add_row(lora, "Adapted layers", "lora_targets")

        self.probe_group = QGroupBox("Linear probe")
        probe = QFormLayout(self.probe_group)
        self._add_row(probe, "Penalty pulls towards", "probe_prior")

        stopping = QGroupBox("Early stopping and validation")
        stop_form = QFormLayout(stopping)
        self._add_row(stop_form, "Patience (epochs)", "patience")
        self._add_row(stop_form, "Min. improvement", "min_delta")
        self._add_row(stop_form, "Monitor", "monitor")
        self._add_row(stop_form, "Cross-validation folds", "cv_folds")

        self.advanced_box = QWidget()
        advanced_layout = QVBoxLayout(self.advanced_box)
        advanced_layout.setContentsMargins(0, 0, 0, 0)
        advanced_layout.addLayout(advanced)
        advanced_layout.addWidget(self.lora_group)
        advanced_layout.addWidget(self.probe_group)
        advanced_layout.addWidget(stopping)

        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(self.browse)
        output_box = QGroupBox("Output folder")
        output_box.setLayout(out_row)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(general)
        layout.addWidget(output_box)
        layout.addLayout(advanced_row)
        layout.addWidget(self.advanced_box)
        layout.addStretch(1)

        self._settings = AppSettings()
        self.set_config(TrainConfig())  # -> the defaults' preset
        self.preset.currentIndexChanged.connect(self._on_preset_current_index_changed)
        self.method.currentIndexChanged.connect(self._on_method_current_index_changed)
        for widget in self.fields().values():
            signal = _change_signal(widget)
            if signal is not None and widget is not self.preset:
                signal.connect(self._on_field_changed)
        self.advanced_button.toggled.connect(self._on_advanced_button_toggled)
        self._show_advanced(self._settings.train_advanced_open())
        # A fresh profile starts on Auto; "Custom" starts from the documented defaults.
        remembered = self._settings.train_preset() or AUTO_PRESET
        if remembered in PRESETS:
            self.preset.setCurrentText(remembered)  # -> apply_preset

    def _add_row(self, form: QFormLayout, label: str, name: str) -> None:
        """A form row for field ``name``: the label shares its tooltip; jargon gets a "What does this mean?" link."""
        widget = self.field(name)
        field: QWidget | QHBoxLayout = widget
        if name in TERMS:
            field = QHBoxLayout()
            field.setContentsMargins(0, 0, 0, 0)
            grows = isinstance(widget, QLineEdit | QComboBox)  # text and choices take the width; numbers don't
            field.addWidget(widget, 1 if grows else 0)
            field.addWidget(explain_link(name))
            if not grows:
                field.addStretch(1)
        form.addRow(label, field)
        caption = form.labelForField(field)
        if caption is not None:
            caption.setToolTip(widget.toolTip())

    def advanced_open(self) -> bool:
        return self.advanced_button.isChecked()

    def _show_advanced(self, open_: bool) -> None:
        blocked = self.advanced_button.blockSignals(True)
        self.advanced_button.setChecked(open_)
        self.advanced_button.blockSignals(blocked)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.advanced_box.setVisible(open_)

    def _on_advanced_button_toggled(self, open_: bool) -> None:
        self._show_advanced(open_)
        self._settings.set_train_advanced_open(open_)

    # --- fields ------------------------------------------------------------------------------------
    def fields(self) -> dict[str, QWidget]:
        """Every input field by name (the keys of ``TOOLTIPS``)."""
        return {name: self.field(name) for name in TOOLTIPS}

    def field(self, name: str) -> QWidget:
        return getattr(self, name)

    # --- config binding ----------------------------------------------------------------------------
    def set_config(self, cfg: TrainConfig) -> None:
        """Show ``cfg``'s training settings in the form."""
        self._applying = True
        try:
            _select(self.method, cfg.method)
            self.epochs.setValue(cfg.epochs)
            self.batch_size.setValue(cfg.batch_size)
            self.steps.setValue(cfg.steps or 0)
            self.learning_rate.setText("" if cfg.learning_rate is None else f"{cfg.learning_rate:g}")
            self.warmup_steps.setValue(cfg.warmup_steps)
            self.weight_decay.setValue(cfg.weight_decay)
            self.layer_decay.setValue(cfg.layer_decay)
            self.img_size.setValue(cfg.img_size or 0)
            _select(self.augmentation, cfg.augmentation)
            self.amp.setChecked(cfg.amp)
            self.grad_accum.setValue(cfg.grad_accum)
            self.patience.setValue(cfg.early_stopping.patience or 0)
            self.min_delta.setValue(cfg.early_stopping.min_delta)
            _select(self.monitor, cfg.early_stopping.monitor)
            self.cv_folds.setValue(cfg.cv.n_splits if cfg.cv.use_cv else 0)
            self.lora_rank.setValue(cfg.lora.rank)
            self.lora_alpha.setValue(cfg.lora.alpha)
            self.lora_dropout.setValue(cfg.lora.dropout)
            self._set_lora_targets(cfg.lora.target_modules)
            _select(self.probe_prior, cfg.probe.prior)
            _select(self.loss, cfg.loss)
            self.seed.setValue(cfg.seed)
            self.output.setText(cfg.output)
        finally:
            self._applying = False
        self._sync_preset()
        self._update_method_help()
        self.changed.emit()

    def to_config(self, base: TrainConfig | None = None) -> TrainConfig:
        """A copy of ``base`` (default: the defaults) with the form's values. Raises ConfigError on bad text."""
        cfg = copy.deepcopy(base) if base is not None else TrainConfig()
        cfg.method = self.method.currentData()
        cfg.epochs = self.epochs.value()
        cfg.batch_size = self.batch_size.value()
        cfg.steps = self.steps.value() or None
        cfg.learning_rate = self._learning_rate()
        cfg.warmup_steps = self.warmup_steps.value()
        cfg.weight_decay = self.weight_decay.value()
        cfg.layer_decay = self.layer_decay.value()
        cfg.img_size = self.img_size.value() or None
        cfg.augmentation = self.augmentation.currentData()
        cfg.amp = self.amp.isChecked()
        cfg.grad_accum = self.grad_accum.value()
        cfg.early_stopping.patience = self.patience.value() or None
        cfg.early_stopping.min_delta = self.min_delta.value()
        cfg.early_stopping.monitor = self.monitor.currentData()
        k = self.cv_folds.value()
        if k == 1:
            raise ConfigError("Cross-validation needs at least 2 folds (or off).")
        cfg.cv.use_cv = k >= 2
        if k >= 2:
            cfg.cv.n_splits = k
        cfg.lora.rank = self.lora_rank.value()
        cfg.lora.alpha = self.lora_alpha.value()
        cfg.lora.dropout = self.lora_dropout.value()
        cfg.lora.target_modules = self._lora_targets()
        cfg.probe.prior = self.probe_prior.currentData()
        cfg.loss = self.loss.currentData()
        cfg.seed = self.seed.value()
        cfg.output = self.output.text().strip()
        return cfg

    def problem(self, base: TrainConfig | None = None) -> str:
        """The first invalid setting as one sentence, or "" when the form is valid."""
        try:
            self.to_config(base).validate()
        except ConfigError as exc:
            return str(exc)
        return ""

    def _learning_rate(self) -> float | None:
        text = self.learning_rate.text().strip().replace(",", ".")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(
                f"Learning rate {text!r} is not a number (e.g. 1e-5), or leave it blank."
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"Learning rate must be a positive number (got {text}).")
        return value

    # --- presets -----------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        if name not in PRESETS:
            return
        try:
            cfg = self.to_config()
        except ConfigError:  # e.g. a learning rate typed as words: the preset replaces it anyway
            cfg = TrainConfig()
        apply_preset_to(cfg, name)
        self.set_config(cfg)  # -> _sync_preset, changed

    def _matching_preset(self) -> str:
        try:
            return preset_of(self.to_config())
        except ConfigError:
            return CUSTOM

    # --- LoRA layers -------------------------------------------------------------------------------
    def _set_lora_targets(self, targets: list[str] | None) -> None:
        custom = self.lora_targets.findData("custom")
        if custom >= 0:
            self.lora_targets.removeItem(custom)
        self._custom_targets = None
        if targets is None:
            _select(self.lora_targets, "attention")
        elif list(targets) == list(QKV_TARGETS):
            _select(self.lora_targets, "qkv")
        else:
            self._custom_targets = list(targets)
            self.lora_targets.addItem(f"as set: {', '.join(targets)}", "custom")
            _select(self.lora_targets, "custom")

    def _lora_targets(self) -> list[str] | None:
        key = self.lora_targets.currentData()
        if key == "qkv":
            return list(QKV_TARGETS)
        return list(self._custom_targets) if key == "custom" and self._custom_targets else None

    def _sync_preset(self) -> None:
        blocked = self.preset.blockSignals(True)
        self.preset.setCurrentText(self._matching_preset())
        self.preset.blockSignals(blocked)

    # --- slots -------------------------------------------------------------------------------------
    def show_auto_choice(self, reason: str) -> None:
        """Under the method: what Auto picked for the run under way, and why (until the method changes)."""
        if self.method.currentData() == AUTO_METHOD:
            self.method_help.setText(f"This run: {reason}")

    def set_model_rates(self, rates: Mapping[str, float]) -> None:
        """The learning rates the model to train recommends per method (``recommended_learning_rates``):
        an empty learning-rate field says which rate the run will use."""
        self._model_rates = rates
        self._update_method_help()

    def _update_method_help(self) -> None:
        method = self.method.currentData()
        self.method_help.setText(METHODS[method][1])
        if method == AUTO_METHOD:
            self.learning_rate.setPlaceholderText("the picked method's default")
        elif method in self._model_rates:
            self.learning_rate.setPlaceholderText(f"the model's rate for this method: {self._model_rates[method]:g}")
        else:
            self.learning_rate.setPlaceholderText(f"method default: {DEFAULT_LEARNING_RATES[method]:g}")
        self.lora_group.setVisible(method == "lora")
        self.probe_group.setVisible(method in ("linear_probe", AUTO_METHOD))  # Auto may pick the probe
        # The probe solves its head exactly and Tip-Adapter trains nothing: no steps. All three work on
        # fixed embeddings: no augmentation, no autocast, no contrastive loss.
        solved, embeddings = method in SOLVED_METHODS, method in CLASS_DATA_METHODS
        for name in ("learning_rate", "warmup_steps", "weight_decay", "layer_decay", "grad_accum"):
            self.field(name).setEnabled(not solved)
        for name in ("augmentation", "amp", "loss"):
            self.field(name).setEnabled(not embeddings)
        self.epochs.setEnabled(method != "tip_adapter")

    def _on_preset_current_index_changed(self, _index: int) -> None:
        self.apply_preset(self.preset.currentText())
        self._remember_preset()

    def _on_method_current_index_changed(self, _index: int) -> None:
        self._update_method_help()

    def _on_field_changed(self, *_args) -> None:
        if self._applying:
            return
        self._sync_preset()
        self._remember_preset()  # an edit away from a preset makes it Custom
        self.changed.emit()

    def _remember_preset(self) -> None:
        if self.preset.currentText() != self._settings.train_preset():
            self._settings.set_train_preset(self.preset.currentText())

    def _on_browse_clicked(self) -> None:
        start = self.output.text() or str(runs_root())
        folder = QFileDialog.getExistingDirectory(self, "Run folder", start)
        if folder:
            self.output.setText(folder)




def _change_signal(widget: QWidget):
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        return widget.valueChanged
    if isinstance(widget, QLineEdit):
        return widget.textChanged
    if isinstance(widget, QCheckBox):
        return widget.toggled
    return None
