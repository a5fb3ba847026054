"""The one split policy: choosing uses validation images (never test), the report uses test."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.data.splits import train_val_indices
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.split_policy import report_part, selection_part


def _dataset(splits: dict[str | None, int], n_classes: int = 3) -> Dataset:
    """``splits``: split name (None: unassigned) -> images; labels cycle over the classes, two images a patient."""
    samples = []
    for split, n in splits.items():
        for i in range(n):
            name = f"P{split}{i // 2}_{i}.png"
            samples.append(Sample(path=Path("/data") / (split or "all") / name, label=i % n_classes, split=split))
    return Dataset(root=Path("/data"), format="test", samples=samples, class_names=["a", "b", "c"][:n_classes])


def _paths(part) -> set[str]:
    return {str(s.path) for s in part.dataset.samples}


def _test_paths(dataset: Dataset) -> set[str]:
    return {str(s.path) for s in dataset.samples if s.split == "test"}


def test_a_val_split_is_used_for_choosing_and_the_test_split_for_the_report():
    ds = _dataset({"train": 12, "val": 6, "test": 9})
    chosen, report = selection_part(ds, DataConfig()), report_part(ds, DataConfig())
    assert chosen.name == "val" and len(chosen.dataset) == 6
    assert chosen.description == "'val' split, 6 images"
    assert report.name == "test" and report.description == "'test' split, 9 images"


def test_without_val_the_validation_part_is_carved_from_train_as_training_carves_it():
    ds = _dataset({"train": 30, "test": 9})
    data = DataConfig(val_fraction=0.2, seed=3)
    chosen = selection_part(ds, data)
    assert chosen.name == "carved-val"
    assert chosen.description.startswith("validation part carved from the 'train' split (20%, seed 3)")
    assert chosen.description.endswith(f", {len(chosen.dataset)} images")
    _train, val = train_val_indices(ds, val_fraction=0.2, seed=3)
    assert _paths(chosen) == {str(ds.samples[i].path) for i in val}  # exactly training's validation images
    assert not _paths(chosen) & _test_paths(ds)
    assert _paths(selection_part(ds, data)) == _paths(chosen)  # deterministic
    assert _paths(selection_part(ds, DataConfig(val_fraction=0.2, seed=4))) != _paths(chosen)


@pytest.mark.parametrize(
    "splits",
    [{"train": 20, "val": 5, "test": 7}, {"train": 20, "test": 7}, {"train": 3, "test": 40}, {None: 30}],
)
@pytest.mark.parametrize("val_fraction", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("test_fraction", [0.0, 0.25])
def test_nothing_is_chosen_on_test_images(splits, val_fraction, test_fraction):
    ds = _dataset(splits)
    data = DataConfig(val_fraction=val_fraction, test_fraction=test_fraction, seed=1, group_regex=r"^(P\w+?)_")
    chosen = selection_part(ds, data)
    assert not _paths(chosen) & _test_paths(ds)
    report = report_part(ds, data)
    if report.name in ("test", "carved-test"):
        assert not _paths(chosen) & _paths(report)  # the report's images were never chosen on


def test_without_splits_the_settings_carve_validation_and_hold_out_test():
    ds = _dataset({None: 40})
    data = DataConfig(val_fraction=0.25, test_fraction=0.2, seed=0)
    chosen, report = selection_part(ds, data), report_part(ds, data)
    assert chosen.description.startswith("validation part carved from the whole dataset (25%, seed 0)")
    assert report.name == "carved-test"
    assert report.description.startswith("test part held out by the split settings (20%, seed 0)")
    assert 7 <= len(report.dataset) <= 9 and not _paths(chosen) & _paths(report)  # 20% of 40, per class


def test_without_test_the_report_says_it_uses_val_or_the_whole_dataset():
    assert report_part(_dataset({"train": 9, "val": 3}), DataConfig()).description == (
        "'val' split (the dataset has no test split), 3 images"
    )
    whole = report_part(_dataset({None: 12}), DataConfig())
    assert whole.name == "all" and whole.description == "whole dataset (it has no test or val split), 12 images"


def test_an_explicit_split_wins_for_the_report():
    ds = _dataset({"train": 9, "val": 3, "test": 6})
    assert report_part(ds, DataConfig(), requested="train").description == "'train' split, 9 images"
    with pytest.raises(DataError, match="no 'other' split"):
        report_part(ds, DataConfig(), requested="other")


def test_a_dataset_with_only_a_test_split_has_nothing_to_choose_on():
    ds = _dataset({"test": 9})
    with pytest.raises(DataError, match="nothing is tuned on the test split"):
        selection_part(ds, DataConfig())
    assert report_part(ds, DataConfig()).name == "test"


def test_a_zero_val_fraction_chooses_on_training_images_and_says_so():
    chosen = selection_part(_dataset({"train": 9, "test": 3}), DataConfig(val_fraction=0.0))
    assert chosen.name == "train" and len(chosen.dataset) == 9
    assert chosen.description == "'train' split (no validation part: the val fraction is 0), 9 images"


def test_a_carved_validation_part_keeps_each_patient_whole():
    ds = _dataset({"train": 40, "test": 6})
    chosen = selection_part(ds, DataConfig(val_fraction=0.3, group_regex=r"^(P\w+?)_"))
    assert "patients kept together" in chosen.description
    patients = {s.path.name.split("_")[0] for s in chosen.dataset.samples}
    train_patients = {s.path.name.split("_")[0] for s in ds.samples if s.split == "train"} - patients
    assert patients and not patients & train_patients
    per_patient = {p: sum(s.path.name.startswith(p + "_") for s in chosen.dataset.samples) for p in patients}
    assert all(n == 2 for n in per_patient.values())
