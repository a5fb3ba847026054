"""The prompts a user wrote for each dataset, kept between sessions in the app's data folder.

One readable JSON file per dataset (keyed by its resolved path) under ``user_data_dir()/prompts``:
the prompt set in the editor and the named sets saved for comparison. Written atomically, so a
crash leaves the previous file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clipstudio.engine.errors import ClipStudioError, ConfigError
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.paths import dataset_file, dataset_key
from clipstudio.engine.storage.text_files import read_json

SCHEMA_VERSION = 1


@dataclass
class DatasetPrompts:
    """What the Prompts screen holds for one dataset: the set being edited and the saved sets."""

    active: PromptSet
    saved_sets: list[PromptSet] = field(default_factory=list)



def prompts_file(dataset_path: str | os.PathLike) -> Path:
    """The JSON file holding a dataset's prompts, e.g. ``prompts/pneumoniamnist-folders-3f2a9c1e.json``."""
    return dataset_file("prompts", dataset_path, ".json")


def save_dataset_prompts(dataset_path: str | os.PathLike, prompts: DatasetPrompts) -> Path:
    """Write the dataset's prompts (atomically); returns the file."""
    return atomic_write_json(
        prompts_file(dataset_path),
        {
            "schema_version": SCHEMA_VERSION,
            "dataset": dataset_key(dataset_path),
            "active": _set_to_dict(prompts.active),
            "saved_sets": [_set_to_dict(s) for s in prompts.saved_sets],
        },
    )


def load_dataset_prompts(dataset_path: str | os.PathLike) -> DatasetPrompts | None:
    """The prompts kept for this dataset, or None when none were kept.

    Raises ``ConfigError`` (naming the file and the reason) when the file can't be used.
    """
    path = prompts_file(dataset_path)
    if not path.is_file():
        return None
    raw = read_json(path, "saved prompts file", error=ConfigError)
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: not a prompts file this version of CLIP Studio can read.")
    if raw.get("dataset") != dataset_key(dataset_path):
        return None  # another dataset whose name and hash prefix collide: not ours
    try:
        return DatasetPrompts(
            active=_set_from_dict(raw["active"]),
            saved_sets=[_set_from_dict(s) for s in raw.get("saved_sets", [])],
        )
    except ClipStudioError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (KeyError, TypeError, AttributeError):
        raise ConfigError(f"{path}: the prompts in it are incomplete or damaged.") from None


def _set_to_dict(prompts: PromptSet) -> dict:
    return {
        "name": prompts.name,
        "templates": list(prompts.templates),
        "class_texts": {name: list(texts) for name, texts in prompts.class_texts.items()},
    }


def _set_from_dict(raw: dict) -> PromptSet:
    templates, class_texts = raw["templates"], raw.get("class_texts", {})
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        raise TypeError("templates")
    if not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in class_texts.values()):
        raise TypeError("class_texts")
    texts = {str(name): list(values) for name, values in class_texts.items()}
    return PromptSet(name=str(raw.get("name") or "default"), templates=list(templates), class_texts=texts)


__all__ = ["DatasetPrompts", "dataset_key", "load_dataset_prompts", "prompts_file", "save_dataset_prompts"]
