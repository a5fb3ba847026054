"""The config dataclass tree that drives the CLI, the GUI and the run folder.

Configs round-trip through plain JSON: ``to_dict`` / ``from_dict`` / ``save_config`` / ``load_config``.
Every file carries ``schema_version``; unknown keys are rejected by name, so a typo in a config
file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.errors import ConfigError

SCHEMA_VERSION = 1

T = TypeVar("T")


@dataclass
class DataConfig:
    """Where the images are and how to read and split them."""

    path: str = ""  # class folder, pairs folder, or annotation file (JSON/JSONL/CSV)
    image_key: str | None = None  # JSON list / JSONL / CSV column holding the image file
    caption_key: str | None = None  # ... and the one holding the caption(s)
    images_dir: str | None = None  # where image ids of a JSON dict / CSV resolve (default: beside the file)
    allow_outside_root: bool = False  # accept image paths outside the dataset folder
    val_fraction: float = 0.2  # used only when the data has no split folders
    test_fraction: float = 0.0
    seed: int = 0
    group_regex: str | None = None  # e.g. r"^(P\d+)_" keeps each patient in one split
    k_folds: int = 0  # 0: no cross-validation


@dataclass
class ModelConfig:
    """Which model to start from and where to run it."""

    spec: str = "builtin"  # "builtin", a Hugging Face id, a model folder or a run folder
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...


@dataclass
class PromptConfig:
    """How class names become texts."""

    templates: list[str] = field(default_factory=list)  # empty: the default ensemble
    class_texts: str | None = None  # JSON file {"class": "text"} or {"class": ["text", ...]}


@dataclass
class EvalConfig:
    """Evaluation settings shared by zero-shot and retrieval."""

    split: str | None = None  # None: "test", else "val", else the whole dataset
    batch_size: int = 64
    recall_k: list[int] = field(default_factory=lambda: [1, 5, 10])
    use_cache: bool = True  # the on-disk embedding cache


@dataclass
class StudioConfig:
    """The root of the tree: one per CLI command, GUI session or run folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass, with ``schema_version`` at the top."""
    return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(cfg)}


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build ``cls`` from a dict, rejecting unknown keys and wrong types by name."""
    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{where}: schema_version {version} is not supported (expected {SCHEMA_VERSION}).")
    return _build(cls, data, where)


def save_config(cfg: Any, path: str | Path) -> Path:
    return atomic_write_json(path, to_dict(cfg))


def load_config(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: can't read the config file ({exc.strerror or exc}).") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8 and try again.") from None
    except (ValueError, RecursionError):  # an integer of thousands of digits, nesting thousands deep
        raise ConfigError(f"{path}: not usable JSON.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object.")
    return from_dict(cls, data, where=str(path))


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} in {cls.__name__}.")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}.")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}.")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
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
# Every default below is the documented one: the GUI shows these comments as tooltips.

TRAIN_METHODS = ("full", "lock_image", "lock_text", "linear_probe", "lora")
LOSSES = ("multi_positive", "clip")
AUGMENTATIONS = ("none", "minimal", "standard")
MONITORS = ("val_acc", "val_loss")

# Learning rate used when ``TrainConfig.learning_rate`` is None, per method. Small on purpose:
# a few hundred to a few thousand clinical images overfit fast and can wipe out what the
# pretrained model knows when the weights move far.
DEFAULT_LEARNING_RATES = {
    "full": 1e-5,  # every weight moves: keep steps tiny
    "lock_image": 1e-5,  # LiT: one tower frozen, the other fine-tuned as in "full"
    "lock_text": 1e-5,
    "lora": 1e-4,  # only small adapters train, so they can take larger steps
    "linear_probe": 1e-3,  # one C x D matrix on frozen embeddings
}


@dataclass
class LoraConfig:
    """LoRA adapters (method "lora") on the attention projections of the towers that have them."""

    rank: int = 8  # rank r of each adapter (B @ A); 4-16 is typical
    alpha: float = 8.0  # adapter output is scaled by alpha / rank: 8 / 8 = 1, as in CLIP-Finetune
    dropout: float = 0.05  # dropout on the adapter input during training
    # Module names to adapt (matched against the end of each module's name). None: automatic -
    # q_proj/k_proj/v_proj/out_proj in CLIP, query/key/value/attention.output.dense in BERT/MiniLM;
    # a tower without attention (EfficientNet) stays frozen except its projection.
    target_modules: list[str] | None = None


@dataclass
class EarlyStoppingConfig:
    """Stop when the validation metric stops improving."""

    patience: int | None = None  # None: never stop early; N: stop after N epochs without improvement
    min_delta: float = 0.0  # an epoch must beat the best by more than this to count as improving
    # "val_acc": balanced accuracy for class data, mean recall (R@1/5/10, both directions) for
    # image-text pairs, higher is better. "val_loss": validation loss, lower is better.
    # The same metric picks checkpoint_best.
    monitor: str = "val_acc"


@dataclass
class CrossValConfig:
    """k-fold cross-validation (run by the cross-validation driver, one Trainer per fold)."""

    use_cv: bool = False  # False: one train/val split
    n_splits: int = 5  # k: number of folds
    random_state: int = 42  # seed of the fold assignment


@dataclass
class TrainConfig:
    """One fine-tuning run. Saved as ``config.json`` in the run folder; reloads with ``load_config``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    output: str = ""  # the run folder; "" -> <user data>/runs/<timestamp>-<method>
    # "full": fine-tune both towers (contrastive). "lock_image" / "lock_text": LiT, one tower frozen.
    # "linear_probe": encoders frozen, a class head initialised from the prompt embeddings (class
    # data only). "lora": low-rank adapters on the attention layers, merged into the saved model.
    method: str = "full"
    epochs: int = 10  # passes over the training images
    batch_size: int = 32  # images per step (contrastive: also texts per step)
    learning_rate: float | None = None  # None: the method's default (DEFAULT_LEARNING_RATES)
    weight_decay: float = 0.1  # AdamW decoupled weight decay; never on biases, norms or temperature
    warmup_steps: int = 50  # optimizer steps of linear warm-up before the cosine decay (at most 1/5 of the run)
    img_size: int | None = None  # None: the model's own input size (ViT models: must be left None)
    augmentation: str = "minimal"  # "none" | "minimal" | "standard" (training images; not linear_probe)
    embed_dim: int = 512  # only when creating a new dual encoder: shared embedding size
    temperature: float = 0.07  # only when creating a new dual encoder: initial temperature
    amp: bool = True  # mixed precision: bf16 on CPU and recent GPUs, fp16 + loss scaling on older GPUs
    grad_clip: float | None = 1.0  # clip the gradient norm to this; None: no clipping
    grad_accum: int = 1  # batches per optimizer step (each batch stays its own contrastive batch)
    # "multi_positive": images sharing a class (or an identical caption) are positives of each
    # other, not negatives. "clip": plain CLIP loss, only the diagonal is positive.
    loss: str = "multi_positive"
    seed: int = 42  # data order, augmentation, text sampling and any random initialisation
    num_workers: int = 2  # threads decoding images (once, into the image cache)
    gpu_id: int = 0  # which CUDA GPU when model.device is "auto"
    log_every_steps: int = 10  # progress events and metrics.jsonl lines every N optimizer steps
    lora: LoraConfig = field(default_factory=LoraConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    save_best: bool = True  # keep checkpoint_best (best monitored metric) besides checkpoint_latest
    resume_from: str | None = None  # a run folder: continue from its checkpoint_latest exactly
    cv: CrossValConfig = field(default_factory=CrossValConfig)

    def resolved_learning_rate(self) -> float:
        """The learning rate actually used: the configured one, else the method's default."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES.get(self.method, DEFAULT_LEARNING_RATES["full"])

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        choices = {
            "method": (self.method, TRAIN_METHODS),
            "loss": (self.loss, LOSSES),
            "augmentation": (self.augmentation, AUGMENTATIONS),
            "early_stopping.monitor": (self.early_stopping.monitor, MONITORS),
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
            if value < 1:
                raise ConfigError(f"{name} must be at least 1 (got {value}).")
        non_negative = {
            "weight_decay": self.weight_decay,
            "warmup_steps": self.warmup_steps,
            "num_workers": self.num_workers,
            "gpu_id": self.gpu_id,
            "early_stopping.min_delta": self.early_stopping.min_delta,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ConfigError(f"{name} must not be negative (got {value}).")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive (got {self.learning_rate}).")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive or null (got {self.grad_clip}).")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(f"img_size must be at least 8 pixels or null (got {self.img_size}).")
        if not 0 <= self.lora.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1) (got {self.lora.dropout}).")
        if self.early_stopping.patience is not None and self.early_stopping.patience < 1:
            raise ConfigError(
                f"early_stopping.patience must be at least 1 or null (got {self.early_stopping.patience})."
            )
