"""Batches: a reproducible order per epoch, texts per image, splits that never touch the test images."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.errors import DataError
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.training.batches import (
    CLASSES,
    PAIRS,
    Batch,
    ImageSplit,
    Prefetcher,
    TrainingTexts,
    data_kind,
    epoch_order,
    micro_batches,
    problems_summary,
    split_batch,
    text_rng,
    training_splits,
)


def test_each_epoch_has_its_own_order_and_repeats_it_on_resume():
    first, again, second = epoch_order(7, 1, 20), epoch_order(7, 1, 20), epoch_order(7, 2, 20)
    assert sorted(first) == list(range(20))
    assert np.array_equal(first, again) and not np.array_equal(first, second)


def test_a_last_batch_of_one_image_is_dropped_but_a_single_small_batch_is_kept():
    assert [len(b) for b in micro_batches(np.arange(9), 4)] == [4, 4]  # one image has no negatives
    assert [len(b) for b in micro_batches(np.arange(10), 4)] == [4, 4, 2]
    assert [len(b) for b in micro_batches(np.arange(1), 4)] == [1]


def test_split_batch_keeps_every_image_once_in_order():
    batch = Batch(
        pixels=torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 2, 2),
        tokens={"input_ids": torch.arange(5).view(5, 1)},
        keys=torch.arange(5),
        size=5,
    )
    parts = split_batch(batch, 2)
    assert [p.size for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([p.keys for p in parts]), batch.keys)
    assert split_batch(batch, 8) == [batch]


def test_the_dataset_splits_are_used_and_the_test_split_never(tmp_path, make_class_folders):
    root = make_class_folders(
        tmp_path / "data", {"train": {"a": 4, "b": 4}, "val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}}
    )
    dataset = load_dataset(root)
    train, val = training_splits(dataset, DataConfig(val_fraction=0.2))
    assert {dataset.samples[i].split for i in train} == {"train"}
    assert {dataset.samples[i].split for i in val} == {"val"}


def test_few_shot_keeps_k_training_images_per_class_nested_and_leaves_validation_alone(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "data", {"train": {"a": 10, "b": 3}, "val": {"a": 2, "b": 2}})
    dataset = load_dataset(root)
    _, all_val = training_splits(dataset, DataConfig())
    shots = {k: training_splits(dataset, DataConfig(shots_per_class=k)) for k in (1, 2, 4)}
    for k, (train, val) in shots.items():
        counts = {c: sum(dataset.samples[i].label == c for i in train) for c in (0, 1)}
        assert counts == {0: k, 1: min(k, 3)} and val == all_val  # b has only 3: all of them
    assert set(shots[1][0]) <= set(shots[2][0]) <= set(shots[4][0])  # more shots add images
    assert training_splits(dataset, DataConfig(shots_per_class=2)) == shots[2]  # the same draw each time
    other = training_splits(dataset, DataConfig(shots_per_class=2, seed=5))[0]
    assert other != shots[2][0]


def test_explicit_fold_indices_win_and_must_not_overlap(class_data):
    dataset = load_dataset(class_data)
    assert training_splits(dataset, DataConfig(), train_indices=[3, 1, 1], val_indices=[2]) == ([1, 3], [2])
    with pytest.raises(DataError, match="overlap"):
        training_splits(dataset, DataConfig(), train_indices=[1, 2], val_indices=[2])


def test_data_kind_tells_classes_from_pairs(class_data, pair_data):
    assert data_kind(load_dataset(class_data)) == CLASSES
    assert data_kind(load_dataset(pair_data)) == PAIRS


def test_class_texts_come_from_the_prompts_and_a_batch_uses_one_text_per_class(class_data):
    prompts = PromptSet(
        templates=["a photo of {class_name}.", "an image of {class_name}."], class_texts={"red": ["a red square"]}
    )
    texts = TrainingTexts.for_classes(["blue", "red"], prompts)
    assert texts.class_texts["red"] == ["a red square"]
    assert texts.class_texts["blue"] == ["a photo of blue.", "an image of blue."]
    split = ImageSplit(np.zeros((4, 2, 2, 3), np.uint8), [0, 1, 2, 3], np.array([0, 0, 1, 1]), [])
    ids, keys = texts.choose(split, np.arange(4), text_rng(0, 1, 0))
    assert list(keys) == [0, 0, 1, 1]
    assert ids[0] == ids[1] and ids[2] == ids[3]
    assert texts.texts[ids[2]] == "a red square"


def test_captions_pair_each_image_with_one_of_its_own(pair_data):
    dataset = load_dataset(pair_data)
    rows = [i for i, s in enumerate(dataset.samples) if s.split == "train"]
    texts, index = TrainingTexts.for_captions(dataset, rows)
    assert set(texts.texts) == {c for i in rows for c in dataset.samples[i].captions}
    captions = [np.array([index[c] for c in dataset.samples[i].captions]) for i in rows]
    split = ImageSplit(np.zeros((len(rows), 2, 2, 3), np.uint8), rows, None, captions)
    ids, keys = texts.choose(split, np.arange(len(rows)), text_rng(0, 1, 0))
    for row, text_id in enumerate(ids):
        assert texts.texts[text_id] in dataset.samples[rows[row]].captions
    assert np.array_equal(ids, keys)


def test_prefetcher_yields_from_the_start_position_in_order():
    with Prefetcher(lambda k: k * k, start=2, stop=6) as batches:
        assert list(batches) == [(2, 4), (3, 9), (4, 16), (5, 25)]


def test_prefetcher_hands_a_failure_to_the_consumer():
    def make(k: int) -> int:
        if k == 2:
            raise ValueError("batch 2 is broken")
        return k

    with Prefetcher(make, 0, 5) as batches:
        stream = iter(batches)
        assert [next(stream), next(stream)] == [(0, 0), (1, 1)]
        with pytest.raises(ValueError, match="batch 2"):
            next(stream)


def test_closing_a_prefetcher_early_stops_its_thread():
    before = threading.active_count()
    with Prefetcher(lambda k: k, 0, 1000) as batches:
        next(iter(batches))
    assert threading.active_count() == before


def test_problems_summary_names_the_first_unreadable_image():
    assert problems_summary([]) == ""
    text = problems_summary([Problem("a.png", "not an image"), Problem("b.png", "empty file")])
    assert text.startswith("2 image(s) could not be read") and "a.png: not an image" in text
