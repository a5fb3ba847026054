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

from clipstudio.engine.atomic import atomic_write_json
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
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from None
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
