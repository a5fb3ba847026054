"""Splits and k-fold indices: stratified, deterministic, and never splitting a patient."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.data.splits import apply_group_regex, assign_splits, kfold_indices
from clipstudio.engine.errors import ConfigError


def _dataset(counts: dict[str, int] | None = None, *, n: int = 0, groups_of: int = 0) -> Dataset:
    """Class name -> image count (or ``n`` unlabelled images); ``groups_of`` images per patient."""
    samples = []
    if counts:
        for label, count in enumerate(counts.values()):
            samples += [Sample(path=Path(f"/data/c{label}_{i}.png"), label=label) for i in range(count)]
    else:
        samples = [Sample(path=Path(f"/data/img_{i}.png")) for i in range(n)]
    if groups_of:
        for i, sample in enumerate(samples):
            sample.group = f"p{sample.label}_{i // groups_of}"
    return Dataset(root=Path("/data"), format="folders", samples=samples, class_names=list(counts or []))


def _split_counts(dataset: Dataset) -> Counter:
    return Counter(s.split for s in dataset.samples)


def _class_split_counts(dataset: Dataset) -> Counter:
    return Counter((s.label, s.split) for s in dataset.samples)


# --- assign_splits -----------------------------------------------------------------------------


def test_default_is_80_20_train_val():
    split = assign_splits(_dataset(n=100))
    assert _split_counts(split) == {"train": 80, "val": 20}


def test_test_fraction_makes_a_test_split():
    split = assign_splits(_dataset(n=200), val_fraction=0.15, test_fraction=0.15)
    assert _split_counts(split) == {"train": 140, "val": 30, "test": 30}


def test_same_seed_same_split_and_another_seed_differs():
    data = _dataset({"normal": 60, "pneumonia": 40})
    first = [s.split for s in assign_splits(data, seed=3).samples]
    again = [s.split for s in assign_splits(data, seed=3).samples]
    other = [s.split for s in assign_splits(data, seed=4).samples]
    assert first == again
    assert first != other


def test_input_samples_are_not_modified():
    data = _dataset({"a": 10, "b": 10})
    split = assign_splits(data)
    assert all(s.split is None for s in data.samples)
    assert all(s.split for s in split.samples)
    assert split.class_names == data.class_names and split is not data


def test_class_ratios_are_preserved_in_every_split():
    data = _dataset({"normal": 1200, "pneumonia": 97, "covid": 23})
    split = assign_splits(data, val_fraction=0.2, test_fraction=0.1, seed=1)
    per = _class_split_counts(split)
    for label, total in enumerate((1200, 97, 23)):
        assert abs(per[(label, "val")] - 0.2 * total) <= 1
        assert abs(per[(label, "test")] - 0.1 * total) <= 1


def test_every_class_with_two_images_reaches_val():
    data = _dataset({"common": 50, "rare": 2, "rarer": 3, "single": 1})
    split = assign_splits(data)
    per = _class_split_counts(split)
    assert per[(1, "val")] == 1 and per[(1, "train")] == 1
    assert per[(2, "val")] >= 1
    assert per[(3, "train")] == 1  # one image stays for training


def test_existing_splits_are_kept_unless_overwrite():
    data = assign_splits(_dataset(n=50), seed=0)
    data.samples[0].split = "test"
    assert assign_splits(data, seed=9) is data
    redone = assign_splits(data, seed=9, overwrite=True)
    assert _split_counts(redone) == {"train": 40, "val": 10}


@pytest.mark.parametrize("seed", range(6))
def test_groups_never_span_two_splits(seed):
    # Patients with 1..5 images each, mixed classes inside some patients.
    samples = []
    for patient in range(60):
        for j in range(1 + patient % 5):
            samples.append(
                Sample(path=Path(f"/d/p{patient}_{j}.png"), label=(patient + j) % 3, group=f"P{patient}")
            )
    samples += [Sample(path=Path(f"/d/loose_{i}.png"), label=i % 3) for i in range(20)]
    data = Dataset(root=Path("/d"), format="csv", samples=samples, class_names=["a", "b", "c"])

    split = assign_splits(data, val_fraction=0.2, test_fraction=0.1, seed=seed)
    splits_of = defaultdict(set)
    for s in split.samples:
        if s.group:
            splits_of[s.group].add(s.split)
    assert all(len(v) == 1 for v in splits_of.values())
    sizes = _split_counts(split)
    n = len(samples)
    assert abs(sizes["val"] / n - 0.2) < 0.04
    assert abs(sizes["test"] / n - 0.1) < 0.04


def test_grouped_split_is_still_stratified():
    data = _dataset({"normal": 400, "pneumonia": 100}, groups_of=4)
    split = assign_splits(data, seed=2)
    per = _class_split_counts(split)
    assert abs(per[(0, "val")] / 400 - 0.2) < 0.03
    assert abs(per[(1, "val")] / 100 - 0.2) < 0.05


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (-0.1, 0.0, "val_fraction must not be negative"),
        (0.2, -0.5, "test_fraction must not be negative"),
        (0.6, 0.4, "must be below 1"),
        (1.0, 0.0, "must be below 1"),
        (float("nan"), 0.0, "val_fraction must be a number"),
    ],
)
def test_bad_fractions_are_refused(val, test, message):
    with pytest.raises(ConfigError, match=message):
        assign_splits(_dataset(n=10), val_fraction=val, test_fraction=test)


# --- apply_group_regex -------------------------------------------------------------------------


def _named(*names: str) -> Dataset:
    return Dataset(
        root=Path("/x"), format="folders", samples=[Sample(path=Path("/x/sub_42") / n) for n in names]
    )


def test_group_from_first_capture_group():
    data = apply_group_regex(
        _named("patient12_view1.png", "patient12_view2.png", "scan.png"), r"patient(\d+)_"
    )
    assert [s.group for s in data.samples] == ["12", "12", None]


def test_group_from_whole_match_without_capture_group():
    data = apply_group_regex(_named("P007-left.png", "P008-right.png"), r"P\d+")
    assert [s.group for s in data.samples] == ["P007", "P008"]


def test_group_regex_reads_the_file_name_not_the_folder():
    data = apply_group_regex(_named("a.png"), r"sub_(\d+)")
    assert data.samples[0].group is None


def test_invalid_group_regex_names_pattern_and_error():
    with pytest.raises(ConfigError, match=r"Invalid group pattern '\(\\d\+': missing \)"):
        apply_group_regex(_named("a.png"), r"(\d+")


def test_grouping_then_splitting_keeps_patients_together():
    names = [f"pat{p}_img{i}.png" for p in range(30) for i in range(3)]
    data = apply_group_regex(_named(*names), r"^(pat\d+)_")
    split = assign_splits(data, seed=5)
    for p in range(30):
        assert len({s.split for s in split.samples if s.group == f"pat{p}"}) == 1


# --- kfold_indices -----------------------------------------------------------------------------


def _assert_partition(folds, n):
    held = sorted(i for _, test in folds for i in test)
    assert held == list(range(n))  # every image held out exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert sorted(train + test) == list(range(n))


def test_kfold_partitions_and_stratifies():
    data = _dataset({"a": 50, "b": 25})
    folds = kfold_indices(data, k=5, seed=0)
    assert len(folds) == 5
    _assert_partition(folds, 75)
    for _, test in folds:
        labels = Counter(data.samples[i].label for i in test)
        assert labels == {0: 10, 1: 5}


def test_kfold_is_deterministic_for_a_seed():
    data = _dataset({"a": 30, "b": 30})
    assert kfold_indices(data, 3, seed=1) == kfold_indices(data, 3, seed=1)
    assert kfold_indices(data, 3, seed=1) != kfold_indices(data, 3, seed=2)


def test_kfold_keeps_groups_in_one_fold():
    data = _dataset({"a": 60, "b": 40}, groups_of=5)
    folds = kfold_indices(data, k=4, seed=0)
    _assert_partition(folds, 100)
    for _, test in folds:
        held_groups = {data.samples[i].group for i in test}
        assert all(data.samples[i].group not in held_groups for i in set(range(100)) - set(test))


def test_kfold_unlabelled():
    folds = kfold_indices(_dataset(n=23), k=4)
    _assert_partition(folds, 23)


def test_kfold_k_larger_than_smallest_class_is_refused():
    with pytest.raises(ConfigError, match="class 'rare' has only 3; use k <= 3"):
        kfold_indices(_dataset({"common": 40, "rare": 3}), k=5)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_kfold_bad_k(k):
    with pytest.raises(ConfigError, match="k >= 2"):
        kfold_indices(_dataset(n=20), k=k)


def test_kfold_too_few_groups():
    data = _dataset({"a": 20, "b": 20}, groups_of=20)
    with pytest.raises(ConfigError, match="at least 5 groups"):
        kfold_indices(data, k=5)
