"""The config dataclass tree that drives the CLI, the GUI and the run folder.

Configs round-trip through plain JSON: ``to_dict`` / ``from_dict`` / ``save_config`` / ``load_config``.
Every file carries ``schema_version``; unknown keys are rejected by name, so a typo in a config
file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.text_files import read_json

# 2: removed TrainConfig.embed_dim / temperature and DataConfig.k_folds (never read) and
# CrossValConfig.random_state (folds now follow DataConfig.seed, like every other split).
SCHEMA_VERSION = 2
# Keys older files may carry that no longer mean anything: dropped when such a file loads, so old
# run folders and configs keep working. {dataclass name: {field: schema version that removed it}}.
_REMOVED_KEYS = {
    "DataConfig": {"k_folds": 2},
    "CrossValConfig": {"random_state": 2},
    "TrainConfig": {"embed_dim": 2, "temperature": 2},
}

# Evaluation defaults, used wherever images are scored (CLI, GUI screens, training's validation).
EVAL_BATCH_SIZE = 64  # images per forward pass when encoding for evaluation
RECALL_KS = (1, 5, 10)  # the K of Recall@K
WISE_ON_VALIDATION = "val"  # a WiSE-FT alpha to be chosen on the run's validation images, not given

T = TypeVar("T")


def _help(text: str, **kwargs: Any) -> Any:
    """A dataclass field whose help text (CLI --help, GUI tooltips) lives beside its default."""
    return field(metadata={"help": text}, **kwargs)


@dataclass
class DataConfig:
    """Where the images are and how to read and split them."""

    path: str = _help("Class folder, pairs folder, or JSON/JSONL/CSV annotation file.", default="")
    image_key: str | None = _help(
        "JSON key / CSV column holding the image file. Default: guessed from the names.", default=None
    )
    caption_key: str | None = _help(
        "JSON key / CSV column holding the caption(s). Default: guessed from the names.", default=None
    )
    images_dir: str | None = _help(
        "Folder the image names of a JSON dict or CSV resolve against. Default: beside the file.",
        default=None,
    )
    allow_outside_root: bool = _help(
        "Accept image paths that point outside the dataset folder.", default=False
    )
    val_fraction: float = _help(
        "Share of the images held out for validation when the data has no val split.", default=0.2
    )
    test_fraction: float = _help(
        "Share of the images held out for testing when the data has no test split.", default=0.0
    )
    seed: int = _help(
        "Split seed: which images are held out for validation and testing and, with cross-validation, "
        "which fold each image is in. Training randomness has its own seed.",
        default=0,
    )
    shots_per_class: int | None = _help(
        "Few-shot: train on only this many images per class (drawn at random with the split seed, the same "
        "ones every time); validation is unchanged. Default: every training image.",
        default=None,
    )
    group_regex: str | None = _help(
        r"Pattern searched in each file name, e.g. '^(P\d+)_'; images with the same match (or first "
        "capture group) are one patient and stay in one split or fold. Default: none, every image is its own group.",
        default=None,
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        for name, value in (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction)):
            if not 0 <= value < 1:
                raise ConfigError(f"data.{name} must be in [0, 1) (got {value}).")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "data.val_fraction + data.test_fraction must be below 1 to leave images for training."
            )
        if self.seed < 0:
            raise ConfigError(f"data.seed must not be negative (got {self.seed}).")
        if self.shots_per_class is not None and self.shots_per_class < 1:
            raise ConfigError(f"data.shots_per_class must be at least 1 or null (got {self.shots_per_class}).")


@dataclass
class ModelConfig:
    """Which model to start from and where to run it."""

    spec: str = _help(
        "'builtin', a Hugging Face id (e.g. openai/clip-vit-base-patch32), a model folder, or a training "
        "run folder (its best checkpoint, else the latest).",
        default="builtin",
    )
    device: str = _help(
        "auto (CUDA when available, then Apple MPS, then CPU), cpu, cuda[:N] or mps.", default="auto"
    )


@dataclass
class PromptConfig:
    """How class names become texts."""

    templates: list[str] = _help(
        "Prompt template containing {class_name}; several make an ensemble. Default: the built-in ensemble.",
        default_factory=list,
    )
    class_texts: str | None = _help(
        'JSON file {"class": "text"} or {"class": ["text", ...]} overriding the templates. Default: none.',
        default=None,
    )


@dataclass
class EvalConfig:
    """Evaluation settings shared by zero-shot and retrieval."""

    split: str | None = _help(
        "Evaluate this split. Default: test, else val, else the whole dataset.", default=None
    )
    batch_size: int = _help("Images per forward pass.", default=EVAL_BATCH_SIZE)
    recall_k: list[int] = _help("Recall@K cut-offs.", default_factory=lambda: list(RECALL_KS))
    use_cache: bool = _help("Use the on-disk embedding cache.", default=True)
    coverage: float = _help(
        "Conformal prediction sets: the share of images whose set should hold the true class, between 0 "
        "and 1 (calibrated on validation images).",
        default=0.9,
    )
    operating_point: str = _help(
        "Binary tasks: how the threshold is chosen on validation images. 'youden' (best sensitivity + "
        "specificity), 'sensitivity=0.95' (the most specific threshold reaching that sensitivity) or "
        "'specificity=0.9' (the most sensitive one reaching that specificity).",
        default="youden",
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be at least 1 (got {self.batch_size}).")
        if not self.recall_k or any(k < 1 for k in self.recall_k):
            raise ConfigError(
                f"eval.recall_k must be one or more values of at least 1 (got {self.recall_k})."
            )
        if not 0 < self.coverage < 1:
            raise ConfigError(f"eval.coverage must be between 0 and 1 (got {self.coverage}).")
        operating_point_rule(self.operating_point)


# The spellings of EvalConfig.operating_point's targets -> the rule they name.
_OPERATING_POINT_TARGETS = {"sensitivity": "target_sensitivity", "specificity": "target_specificity"}


def operating_point_rule(text: str) -> tuple[str, float | None]:
    """``("youden", None)``, ``("target_sensitivity", 0.95)`` or ``("target_specificity", 0.9)`` from
    "youden", "sensitivity=0.95" or "specificity=0.9"; ConfigError for anything else."""
    spelled = text.strip().lower().replace(" ", "")
    if spelled == "youden":
        return "youden", None
    name, _, value = spelled.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = None
    if name not in _OPERATING_POINT_TARGETS or target is None or not 0 < target <= 1:
        raise ConfigError(
            f"operating point {text!r} is not 'youden', 'sensitivity=X' or 'specificity=X' with X in (0, 1]."
        )
    return _OPERATING_POINT_TARGETS[name], target


@dataclass
class StudioConfig:
    """The root of the tree: one per CLI command, GUI session or run folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        self.data.validate()
        self.eval.validate()


def config_field(cls: type, path: str) -> tuple[dataclasses.Field, Any]:
    """The dataclass field at ``path`` ("lr" or "early_stopping.patience") and its default value."""
    *parents, name = path.split(".")
    target: Any = cls()
    for parent in parents:
        target = getattr(target, parent)
    fields = {f.name: f for f in dataclasses.fields(target)}
    if name not in fields:
        raise KeyError(f"{type(target).__name__} has no field {name!r}")
    return fields[name], getattr(target, name)


def help_for(cls: type, path: str, *, with_default: bool = True) -> str:
    """The help text of a config field, ending with its default (read from the dataclass).

    Defaults that are None or empty are left out: their help text ends with what "not set" means.
    """
    f, default = config_field(cls, path)
    text = f.metadata["help"]
    if not with_default or default is None or default == [] or default == "":
        return text
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, list):
        shown = " ".join(map(str, default))
    elif isinstance(default, float):
        shown = f"{default:g}"
    else:
        shown = str(default)
    return f"{text} Default: {shown}."


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass, with ``schema_version`` at the top."""
    return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(cfg)}


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build ``cls`` from a dict, rejecting unknown keys and wrong types by name.

    Files of an older ``schema_version`` load too: keys removed since then are dropped.
    """
    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: schema_version {version!r} is not supported (expected 1 to {SCHEMA_VERSION})."
        )
    return _build(cls, data, where, version)


def save_config(cfg: Any, path: str | Path) -> Path:
    return atomic_write_json(path, to_dict(cfg))


def load_config(cls: type[T], path: str | Path) -> T:
    data = read_json(path, "config file", error=ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object.")
    return from_dict(cls, data, where=str(path))


def _build(cls: type, data: Any, where: str, version: int = SCHEMA_VERSION) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}.")
    removed = _REMOVED_KEYS.get(cls.__name__, {})
    data = {key: value for key, value in data.items() if version >= removed.get(key, 0)}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} in {cls.__name__}.")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}", version) for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str, version: int = SCHEMA_VERSION) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, version)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}.")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, version)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}.")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]", version) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {type(value).__name__}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}.")
        return value
    return value


# --- Fine-tuning -------------------------------------------------------------------------------
# Every default below is the documented one: the CLI's --help and the GUI's tooltips read the help texts.

TRAIN_METHODS = ("full", "lock_image", "lock_text", "linear_probe", "lora", "tip_adapter", "tip_adapter_f")
# "auto" stands for one of TRAIN_METHODS, picked from the training data when a run starts
# (training/methods/auto.py); the run folder records the method it picked.
AUTO_METHOD = "auto"
METHOD_CHOICES = (AUTO_METHOD, *TRAIN_METHODS)
# Methods that fit a classifier on the frozen model's image embeddings: class data only.
CLASS_DATA_METHODS = ("linear_probe", "tip_adapter", "tip_adapter_f")
LOSSES = ("multi_positive", "clip")
AUGMENTATIONS = ("none", "minimal", "standard")
MONITORS = ("val_acc", "val_loss")
PROBE_PRIORS = ("auto", "text", "none")

# Learning rate used when ``TrainConfig.learning_rate`` is None, per method. Small on purpose:
# a few hundred to a few thousand clinical images overfit fast and can wipe out what the
# pretrained model knows when the weights move far.
DEFAULT_LEARNING_RATES = {
    "full": 1e-5,  # every weight moves: keep steps tiny
    "lock_image": 1e-5,  # LiT: one tower frozen, the other fine-tuned as in "full"
    "lock_text": 1e-5,
    "lora": 1e-4,  # only small adapters train, so they can take larger steps
    "linear_probe": 1e-3,  # not used: the probe's head is solved exactly (L-BFGS), not stepped
    "tip_adapter": 1e-3,  # not used: nothing trains
    "tip_adapter_f": 1e-3,  # the Tip-Adapter paper's: only the cache keys train
}


# The built-in model's own rates (its ``recommended_learning_rates``), where they measured better than the
# method's default. Full fine-tuning, MedMNIST subsets at 112 px, 10 epochs, test balanced accuracy:
# BloodMNIST 0.773 at 1e-4 (standard augmentation) vs 0.707 at 1e-5 (docs/FINETUNING.md). The hub CLIPs
# keep FLYP's 1e-5.
BUILTIN_LEARNING_RATES = types.MappingProxyType({"full": 1e-4})


_LR_TABLE = ", ".join(f"{method} {lr:g}" for method, lr in DEFAULT_LEARNING_RATES.items())
_BUILTIN_LR_TABLE = ", ".join(f"{method} {lr:g}" for method, lr in BUILTIN_LEARNING_RATES.items())


@dataclass
class LoraConfig:
    """LoRA adapters (method "lora") on the attention projections of the towers that have them."""

    rank: int = _help("LoRA rank r of each adapter (B @ A); 4-16 is typical.", default=8)
    alpha: float = _help(
        "LoRA alpha: the adapter output is scaled by alpha / rank (8 / 8 = 1, as in CLIP-Finetune).",
        default=8.0,
    )
    dropout: float = _help("Dropout on the LoRA adapter input during training, in [0, 1).", default=0.05)
    target_modules: list[str] | None = _help(
        "Module names to adapt (matched against the end of each name). Default: q_proj/k_proj/v_proj/out_proj "
        "in CLIP (o_proj for a ViT image tower), query/key/value/attention.output.dense in BERT/MiniLM (the CLIP-LoRA preset: q/k/v only); a "
        "tower without attention (EfficientNet) stays frozen except its projection.",
        default=None,
    )


@dataclass
class ProbeConfig:
    """The linear probe (method "linear_probe"): logistic regression on the frozen image embeddings."""

    prior: str = _help(
        '"text": the L2 penalty pulls the class head towards the zero-shot head (the prompts), so few '
        'images move it little. "none": towards zero, as scikit-learn\'s LogisticRegression. "auto": "text" '
        "where the prompts clearly beat chance on the validation images (more than guessing would reach 19 "
        "times in 20), else \"none\". Each epoch tries a weaker "
        "penalty (strong to weak); validation picks the best.",
        default="auto",
    )


@dataclass
class EarlyStoppingConfig:
    """Stop when the validation metric stops improving."""

    patience: int | None = _help(
        "Stop after this many epochs without improvement. Default: never stop early.", default=None
    )
    min_delta: float = _help(
        "An epoch must beat the best by more than this to count as improving.", default=0.0
    )
    monitor: str = _help(
        '"val_acc": balanced accuracy for class data, mean recall (R@1/5/10, both directions) for image-text '
        'pairs, higher is better. "val_loss": validation loss, lower is better. The same metric picks '
        "checkpoint_best.",
        default="val_acc",
    )


@dataclass
class CrossValConfig:
    """k-fold cross-validation (run by the cross-validation driver, one Trainer per fold).

    The fold assignment follows the split seed, ``DataConfig.seed``.
    """

    use_cv: bool = _help(
        "k-fold cross-validation: train k models, each validated on a different fold, and report the mean "
        "(off: one train/validation split).",
        default=False,
    )
    n_splits: int = _help("k, the number of cross-validation folds (at least 2).", default=5)


@dataclass
class TrainConfig:
    """One fine-tuning run. Saved as ``config.json`` in the run folder; reloads with ``load_config``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    output: str = _help(
        "The run folder (config, checkpoints, history). Default: <user data>/runs/<date-time>-<method>.",
        default="",
    )
    method: str = _help(
        '"full": fine-tune both towers (contrastive). "lock_image" / "lock_text": LiT, one tower frozen. '
        '"linear_probe": encoders frozen, a logistic-regression class head on the image embeddings, its '
        'penalty chosen on validation (class data only). "lora": low-rank adapters on the attention layers, merged into the saved model. '
        '"tip_adapter": encoders frozen, zero-shot plus a cache of the training images (Tip-Adapter), nothing trained, '
        'how much the cache counts chosen on validation (class data only). "tip_adapter_f": the same with the cache '
        'trained (Tip-Adapter-F; the paper trains 20 epochs). "auto": one of these, picked from how many training '
        "images each class has when the run starts (the log says which and why; the run folder records it).",
        default="full",
    )
    epochs: int = _help(
        "Passes over the training images (the linear probe: penalty strengths tried, strong to weak; "
        "tip_adapter: always 1).",
        default=10,
    )
    batch_size: int = _help("Images per step (contrastive: also texts per step).", default=32)
    steps: int | None = _help(
        "Optimizer steps of the whole run (full, lock_image, lock_text, lora), spread evenly over the epochs "
        "(rounded up to whole steps per epoch): each epoch then goes over the training images as many times as "
        "it takes, and the epochs are how often the run validates. Default: each epoch goes over the training "
        "images once.",
        default=None,
    )
    learning_rate: float | None = _help(
        f"Peak learning rate. Default: the model's recommended rate for the method where it has one (the "
        f"built-in model: {_BUILTIN_LR_TABLE}), else the method's own ({_LR_TABLE}); small on purpose, so a "
        "few hundred images don't wipe out what the model knows. The log says which rate a run uses.",
        default=None,
    )
    weight_decay: float = _help(
        "AdamW decoupled weight decay; never on biases, norms or temperature.", default=0.1
    )
    layer_decay: float = _help(
        "Layer-wise learning-rate decay (full, lock_image, lock_text, lora): heads and projections train at the "
        "learning rate, each tower's last layer at this times it and every layer below at this times the one "
        "above, so the early, general layers change least. 1 turns it off; 0.65-0.85 is usual for fine-tuning.",
        default=1.0,
    )
    warmup_steps: int = _help(
        "Optimizer steps of linear warm-up before the cosine decay (at most 1/5 of the run).", default=50
    )
    img_size: int | None = _help(
        "Training image size in pixels. Default: the model's own input size, except that on the CPU small images "
        "(64 px or less) train at 112 px with CNN models such as the built-in one (ViT models: keep it).",
        default=None,
    )
    augmentation: str = _help(
        "Random changes to the training images: none, minimal (crop, flip) or standard (+ colour, rotation); "
        "not used by the linear probe. With none, a run whose image tower stays frozen (locked image tower; LoRA "
        "on the built-in model) computes each image's features once: about 3x faster.",
        default="minimal",
    )
    amp: bool = _help(
        "Mixed precision: bf16 on CPU and recent GPUs, fp16 + loss scaling on older GPUs. Faster, less memory.",
        default=True,
    )
    grad_clip: float | None = _help("Clip the gradient norm to this (not set: no clipping).", default=1.0)
    grad_accum: int = _help(
        "Batches per optimizer step (each batch stays its own contrastive batch).", default=1
    )
    loss: str = _help(
        '"multi_positive": images sharing a class (or an identical caption) are positives of each other, '
        'not negatives. "clip": plain CLIP loss, only the diagonal is positive.',
        default="multi_positive",
    )
    seed: int = _help(
        "Training seed: data order, augmentation, text sampling and any random initialisation. "
        "Which images train, validate or test is the split seed's job.",
        default=42,
    )
    num_workers: int = _help(
        "Image-decoding threads (threads, not processes, so safe on Windows).", default=2
    )
    gpu_id: int = _help("Which CUDA GPU when the device is auto.", default=0)
    log_every_steps: int = _help(
        "Progress events and metrics.jsonl lines every N optimizer steps (and at least every 2 s).", default=10
    )
    lora: LoraConfig = field(default_factory=LoraConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    save_best: bool = _help(
        "Keep checkpoint_best (best monitored metric) besides checkpoint_latest.", default=True
    )
    resume_from: str | None = _help(
        "A run folder: continue it from its checkpoint_latest, exactly. Default: a new run.", default=None
    )
    cv: CrossValConfig = field(default_factory=CrossValConfig)

    def resolved_learning_rate(self, recommended: typing.Mapping[str, float] | None = None) -> float:
        """The learning rate actually used: the configured one, else the model's ``recommended`` rate for
        the method (``ImageTextModel.recommended_learning_rates``), else the method's default."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        if recommended and self.method in recommended:
            return float(recommended[self.method])
        return DEFAULT_LEARNING_RATES.get(self.method, DEFAULT_LEARNING_RATES["full"])

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        choices = {
            "method": (self.method, METHOD_CHOICES),
            "loss": (self.loss, LOSSES),
            "augmentation": (self.augmentation, AUGMENTATIONS),
            "early_stopping.monitor": (self.early_stopping.monitor, MONITORS),
            "probe.prior": (self.probe.prior, PROBE_PRIORS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {value!r}).")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "log_every_steps": self.log_every_steps,
            "lora.rank": self.lora.rank,
        }
        for name, value in positive.items():
            if not value >= 1:
                raise ConfigError(f"{name} must be at least 1 (got {value}).")
        non_negative = {
            "weight_decay": self.weight_decay,
            "warmup_steps": self.warmup_steps,
            "num_workers": self.num_workers,
            "gpu_id": self.gpu_id,
            "seed": self.seed,
            "early_stopping.min_delta": self.early_stopping.min_delta,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ConfigError(f"{name} must not be negative (got {value}).")
        self.data.validate()
        if self.cv.use_cv and self.cv.n_splits < 2:
            raise ConfigError(
                f"cv.n_splits must be at least 2 for cross-validation (got {self.cv.n_splits})."
            )
        if not self.lora.alpha > 0:
            raise ConfigError(f"lora.alpha must be positive (got {self.lora.alpha}).")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be at least 1 or null (got {self.steps}).")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive (got {self.learning_rate}).")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive or null (got {self.grad_clip}).")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(f"img_size must be at least 8 pixels or null (got {self.img_size}).")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be above 0 and at most 1 (got {self.layer_decay}).")
        if not 0 <= self.lora.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1) (got {self.lora.dropout}).")
        if self.early_stopping.patience is not None and self.early_stopping.patience < 1:
            raise ConfigError(
                f"early_stopping.patience must be at least 1 or null (got {self.early_stopping.patience})."
            )
