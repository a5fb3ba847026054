"""Which images an evaluation uses: one policy for the CLI and the GUI.

- Choosing (prompt editing, model selection) uses validation images: the dataset's "val" split,
  else the validation part training carves from train with the split settings. Never test.
- The final report uses test images: the "test" split, else the test part the split settings hold
  out, else "val", else the whole dataset, and says which.

Each choice comes with a plain description ("'test' split, 300 images") that both front ends show
beside the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.data.splits import apply_group_regex, assign_splits, train_val_indices
from clipstudio.engine.errors import DataError


@dataclass(frozen=True)
class EvaluationPart:
    """The images an evaluation uses, a short name for JSON (``"test"``, ``"all"``, ...) and a description."""

    dataset: Dataset
    name: str
    description: str


def selection_part(dataset: Dataset, data: DataConfig) -> EvaluationPart:
    """The images to tune prompts and select models on: validation, never test.

    ``data`` holds the split settings (val_fraction, test_fraction, seed, group_regex), so a carved
    validation part is exactly the one training validates on.
    """
    names = dataset.split_names()
    if "val" in names:
        return _named(dataset, "val")
    if names and "train" not in names:
        raise DataError(
            f"{dataset.source or dataset.root}: no 'val' or 'train' split to tune on (splits present: "
            f"{', '.join(names)}); nothing is tuned on the test split."
        )
    grouped = _grouped(dataset, data)
    train, val = train_val_indices(
        grouped, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=data.seed
    )
    source = "the 'train' split" if names else "the whole dataset"
    if val:
        part = grouped.subset(val)
        return EvaluationPart(
            part,
            "carved-val",
            f"validation part carved from {source} ({_settings(data.val_fraction, data)}), {_images(part)}",
        )
    part = grouped.subset(train)
    why = "the val fraction is 0" if data.val_fraction <= 0 else "too few images to hold some out"
    what = "'train' split" if names else "training part"
    return EvaluationPart(part, "train", f"{what} (no validation part: {why}), {_images(part)}")


def report_part(dataset: Dataset, data: DataConfig, *, requested: str | None = None) -> EvaluationPart:
    """The images for the final report: ``requested`` if given, else test, else val, else all of them."""
    if requested:
        return _named(dataset, requested)
    names = dataset.split_names()
    if "test" in names:
        return _named(dataset, "test")
    if not names and data.test_fraction > 0:
        held_out = assign_splits(
            _grouped(dataset, data), val_fraction=data.val_fraction, test_fraction=data.test_fraction,
            seed=data.seed,
        )
        test = [i for i, s in enumerate(held_out.samples) if s.split == "test"]
        if test:
            part = dataset.subset(test)
            return EvaluationPart(
                part,
                "carved-test",
                f"test part held out by the split settings ({_settings(data.test_fraction, data)}), {_images(part)}",
            )
    if "val" in names:
        part = dataset.split("val")
        return EvaluationPart(part, "val", f"'val' split (the dataset has no test split), {_images(part)}")
    return EvaluationPart(dataset, "all", f"whole dataset (it has no test or val split), {_images(dataset)}")


def _named(dataset: Dataset, name: str) -> EvaluationPart:
    part = dataset.split(name)
    return EvaluationPart(part, name, f"'{name}' split, {_images(part)}")


def _grouped(dataset: Dataset, data: DataConfig) -> Dataset:
    return apply_group_regex(dataset, data.group_regex) if data.group_regex else dataset


def _settings(fraction: float, data: DataConfig) -> str:
    patients = ", patients kept together" if data.group_regex else ""
    return f"{fraction:.0%}, seed {data.seed}{patients}"


def _images(part: Dataset) -> str:
    return f"{len(part)} image{'s' if len(part) != 1 else ''}"


__all__ = ["EvaluationPart", "report_part", "selection_part"]
