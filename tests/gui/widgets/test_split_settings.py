"""The split settings' preview: the split sizes a training run with these settings would use."""

from __future__ import annotations

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.splits import apply_group_regex
from clipstudio.engine.training.batches import training_splits
from clipstudio.gui.widgets.split_settings import SplitSettingsPanel, preview_splits


def test_the_preview_counts_what_training_will_use(make_class_folders, tmp_path):
    dataset = load_dataset(make_class_folders(tmp_path / "xray", {"normal": 9, "pneumonia": 7}))
    settings = {"val_fraction": 0.25, "test_fraction": 0.2, "seed": 3, "group_regex": r"_(\d)\."}

    preview = preview_splits(dataset, settings)

    grouped = apply_group_regex(dataset, settings["group_regex"])
    train, val = training_splits(grouped, DataConfig(val_fraction=0.25, test_fraction=0.2, seed=3))
    assert preview == {"train": len(train), "val": len(val), "held_out": 16 - len(train) - len(val)}
    assert preview["val"] > 0 and preview["held_out"] > 0


def test_a_dataset_with_its_own_splits_previews_them(make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "xray", {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}, "test": {"a": 2}})
    preview = preview_splits(load_dataset(root), {"val_fraction": 0.5, "test_fraction": 0.5, "seed": 0})
    assert preview == {"train": 6, "val": 2, "held_out": 2}  # the fractions don't apply


def test_fractions_without_effect_are_disabled_and_say_why(qtbot, make_class_folders, tmp_path):
    panel = SplitSettingsPanel({})
    qtbot.addWidget(panel)
    flat = make_class_folders(tmp_path / "flat", {"a": 3, "b": 3})
    panel.set_dataset(load_dataset(flat))
    assert panel.val_fraction.isEnabled() and panel.test_fraction.isEnabled()
    split = make_class_folders(tmp_path / "split", {"train": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}})
    panel.set_dataset(load_dataset(split))
    assert panel.val_fraction.isEnabled() and not panel.test_fraction.isEnabled()
    assert "own split decides which images are for testing" in panel.situation.text()
    assert "Not used for this dataset" in panel.test_fraction.toolTip()
    assert "not used" not in panel.situation.text()
