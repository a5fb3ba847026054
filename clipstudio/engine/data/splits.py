"""Train/val/test splits and k-fold indices: stratified by class, never splitting a patient (group)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

import numpy as np

from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ConfigError, DataError


def apply_group_regex(dataset: Dataset, pattern: str) -> Dataset:
    """Set each sample's group (e.g. patient id) from a regex searched in its file name.

    The group is the first capture group if the pattern has one, else the whole match; samples
    whose name does not match get no group (each is then its own group).
    """
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"Invalid group pattern '{pattern}': {e}.") from None
    samples = []
    for sample in dataset.samples:
        found = regex.search(sample.path.name)
        group = None
        if found:
            group = found.group(1) if regex.groups else found.group(0)
        samples.append(replace(sample, group=group or None))
    return replace(dataset, samples=samples)


def assign_splits(
    dataset: Dataset,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Dataset:
    """A copy of the dataset with every sample put in train, val or test.

    Stratified by class (each class with 2+ images gets at least one in val), deterministic for a
    seed, and group-aware: all images of a group (patient) land in the same split. A dataset that
    already has splits is returned unchanged unless ``overwrite``.
    """
    _check_fractions(val_fraction, test_fraction)
    if not overwrite and any(s.split for s in dataset.samples):
        return dataset
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    units = _units(dataset)
    strata = [s.label for s in dataset.samples]
    per_class = Counter(strata)
    targets = {c: _class_targets(n, val_fraction, test_fraction) for c, n in per_class.items()}

    rng = np.random.default_rng(seed)
    order = [units[i] for i in rng.permutation(len(units))]
    # Largest groups first: they are the hardest to place, small ones then fill the gaps.
    order.sort(key=len, reverse=True)

    counts = {c: [0, 0, 0] for c in per_class}
    names = ("train", "val", "test")
    split_of = [""] * len(dataset.samples)
    for unit in order:
        unit_classes = Counter(strata[i] for i in unit)
        best = min(
            (s for s in range(3) if fractions[s] > 0),
            key=lambda s: _placement_cost(unit_classes, s, counts, targets, per_class),
        )
        for c, n in unit_classes.items():
            counts[c][best] += n
        for i in unit:
            split_of[i] = names[best]
    samples = [replace(s, split=split_of[i]) for i, s in enumerate(dataset.samples)]
    return replace(dataset, samples=samples)


def train_val_indices(
    dataset: Dataset, *, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> tuple[list[int], list[int]]:
    """(train, val) sample indices as training uses them; the test split is never among them.

    The dataset's own "train"/"val" splits; without a "val" split, ``val_fraction`` of train is
    held out (stratified by class, patients kept together); without any split, the whole dataset
    is split by ``assign_splits`` (``test_fraction`` of it held out as test, in neither list).
    Deterministic for a seed.
    """
    names = dataset.split_names()
    if not names:
        split = assign_splits(dataset, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        return _indices_of(split, "train"), _indices_of(split, "val")
    if "train" not in names:
        raise DataError(
            f"{dataset.source or dataset.root}: no 'train' split to train on (splits present: {', '.join(names)})."
        )
    train = _indices_of(dataset, "train")
    val = _indices_of(dataset, "val")
    if not val and val_fraction > 0:
        carved = assign_splits(
            dataset.subset(train), val_fraction=val_fraction, test_fraction=0.0, seed=seed, overwrite=True
        )
        val = [train[i] for i, s in enumerate(carved.samples) if s.split == "val"]
        train = [train[i] for i, s in enumerate(carved.samples) if s.split == "train"]
    return train, val


def _indices_of(dataset: Dataset, name: str) -> list[int]:
    return [i for i, s in enumerate(dataset.samples) if s.split == name]


def kfold_indices(dataset: Dataset, k: int = 5, *, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(train indices, held-out indices) for each of ``k`` folds, stratified and group-aware."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"k-fold cross-validation needs k >= 2 (got {k!r}).")
    n = len(dataset.samples)
    if n < k:
        raise ConfigError(f"{k}-fold cross-validation needs at least {k} images; the dataset has {n}.")
    labels = [s.label for s in dataset.samples]
    labelled = any(label is not None for label in labels)
    if labelled:
        name, smallest = _smallest_class(dataset)
        if smallest < k:
            raise ConfigError(
                f"{k}-fold cross-validation needs at least {k} images per class, but class "
                f"'{name}' has only {smallest}; use k <= {max(smallest, 1)} or add images."
            )
    y = np.array([-1 if label is None else label for label in labels])
    indices = np.arange(n)

    if any(s.group is not None for s in dataset.samples):
        groups = _group_ids(dataset)
        n_groups = len(set(groups))
        if n_groups < k:
            raise ConfigError(
                f"{k}-fold cross-validation needs at least {k} groups (patients); the dataset has {n_groups}."
            )
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(indices, y, groups)
    elif labelled:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(indices, y)
    else:
        folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(indices)
    return [(sorted(train.tolist()), sorted(held.tolist())) for train, held in folds]


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a number between 0 and 1 (got {value!r}).")
        if value < 0:
            raise ConfigError(f"{name} must not be negative (got {value}).")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction must be below 1 to leave images for training "
            f"(got {val_fraction} + {test_fraction})."
        )


def _units(dataset: Dataset) -> list[list[int]]:
    """Sample indices that must stay together: one list per group, one per ungrouped sample."""
    by_group: dict[str, list[int]] = {}
    units: list[list[int]] = []
    for i, sample in enumerate(dataset.samples):
        if sample.group is None:
            units.append([i])
        else:
            by_group.setdefault(sample.group, []).append(i)
    return units + [by_group[g] for g in sorted(by_group)]


def _group_ids(dataset: Dataset) -> list[str]:
    # The NUL prefix keeps "one group per ungrouped sample" apart from any real group name.
    return [s.group if s.group is not None else f"\0{i}" for i, s in enumerate(dataset.samples)]


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _class_targets(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """How many of a class's ``n`` images go to train, val and test.

    At least one image in val when the class has 2+, one in test when enough are left,
    and always at least one in train.
    """
    n_val = _round_half_up(n * val_fraction)
    n_test = _round_half_up(n * test_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    if test_fraction > 0 and n - n_val >= 2:
        n_test = max(n_test, 1)
    while n >= 1 and n_val + n_test > n - 1:
        if n_test > 0 and (n_test >= n_val or n_val <= 1):
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def _placement_cost(
    unit_classes: Counter,
    split: int,
    counts: dict[object, list[int]],
    targets: dict[object, tuple[int, int, int]],
    per_class: Counter,
) -> float:
    """How much putting this unit in ``split`` moves the counts away from the targets.

    Squared miss per class, relative to the class size so a small class counts as much as a big one.
    For single images this fills whichever split lacks that class most, hitting the targets exactly.
    """
    cost = 0.0
    for c, n in unit_classes.items():
        have, want = counts[c][split], targets[c][split]
        cost += ((have + n - want) ** 2 - (have - want) ** 2) / per_class[c] ** 2
    return cost


def _smallest_class(dataset: Dataset) -> tuple[str, int]:
    counts = Counter(s.label for s in dataset.samples)
    present = [(n, label) for label, n in counts.items()]
    n, label = min(present, key=lambda item: item[0])
    if label is None:
        name = "(unlabelled)"
    elif 0 <= label < len(dataset.class_names):
        name = dataset.class_names[label]
    else:
        name = str(label)
    return name, n
