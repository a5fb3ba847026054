"""The health report: what a user learns about their dataset before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from clipstudio.engine.data import health
from clipstudio.engine.data.dataset import Dataset, Problem, Sample
from clipstudio.engine.data.health import health_report
from clipstudio.engine.events import ProgressUpdated

KEYS = {
    "format",
    "n_images",
    "n_unreadable",
    "classes",
    "splits",
    "imbalance_ratio",
    "duplicates",
    "n_leakage",
    "problems",
    "image_sizes",
    "captions",
    "warnings",
    "complete",
}


def _image(path: Path, shade: int = 0, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade, 255 - shade, 7)).save(path)
    return path


def _labelled(tmp_path: Path, spec: dict[tuple[str, str], int], classes: list[str]) -> Dataset:
    """(class, split) -> number of distinct images."""
    samples = []
    shade = 0
    for (cls, split), n in spec.items():
        for i in range(n):
            shade += 1
            path = _image(tmp_path / split / cls / f"{i}.png", shade)
            samples.append(Sample(path=path, label=classes.index(cls), split=split))
    return Dataset(root=tmp_path, format="folders", samples=samples, class_names=classes)


def _plain(tmp_path: Path, n: int, **sample_fields) -> Dataset:
    samples = [Sample(path=_image(tmp_path / f"img{i}.png", i), **sample_fields) for i in range(n)]
    return Dataset(root=tmp_path, format="jsonl", samples=samples)


def test_counts_per_class_and_split_and_imbalance(tmp_path):
    data = _labelled(
        tmp_path,
        {("normal", "train"): 12, ("pneumonia", "train"): 3, ("normal", "val"): 3, ("pneumonia", "val"): 1},
        ["normal", "pneumonia"],
    )
    out = health_report(data).to_dict()
    assert set(out) == KEYS
    assert out["format"] == "folders" and out["n_images"] == 19 and out["n_unreadable"] == 0
    assert out["classes"] == {"normal": 15, "pneumonia": 4}
    assert out["splits"] == {"train": {"normal": 12, "pneumonia": 3}, "val": {"normal": 3, "pneumonia": 1}}
    assert out["imbalance_ratio"] == 3.75
    assert "Class imbalance 3.8:1 (normal 15, pneumonia 4)" in out["warnings"]
    assert out["complete"] is True
    json.dumps(out)  # what `inspect --json` prints


def test_balanced_classes_give_no_imbalance_warning(tmp_path):
    data = _labelled(tmp_path, {("a", "train"): 3, ("b", "train"): 2}, ["a", "b"])
    report = health_report(data)
    assert report.imbalance_ratio == 1.5
    assert not any("imbalance" in w for w in report.warnings)


def test_class_missing_from_a_split_is_warned(tmp_path):
    data = _labelled(tmp_path, {("a", "train"): 3, ("b", "train"): 2, ("a", "val"): 2}, ["a", "b"])
    assert "The val split has no images of b" in health_report(data).warnings


def test_unlabelled_and_unsplit_dataset(tmp_path):
    out = health_report(_plain(tmp_path, 4)).to_dict()
    assert out["classes"] == {} and out["splits"] == {} and out["imbalance_ratio"] is None


def test_unlabelled_splits_are_plain_counts(tmp_path):
    data = _plain(tmp_path, 5)
    for s in data.samples[:3]:
        s.split = "train"
    for s in data.samples[3:]:
        s.split = "test"
    assert health_report(data).to_dict()["splits"] == {"train": 3, "test": 2}


def test_unreadable_files_are_listed_with_reasons(tmp_path):
    data = _plain(tmp_path, 2)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not really a picture\n" * 4)
    truncated = _image(tmp_path / "cut.png", 9, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:60])
    missing = tmp_path / "gone.png"
    data.samples += [Sample(path=p) for p in (empty, text, truncated, missing)]
    data.problems = [Problem(path="labels.csv:7", reason="no image path in column 'file'")]

    out = health_report(data).to_dict()
    assert out["n_unreadable"] == 4
    reasons = {p["path"]: p["reason"] for p in out["problems"]}
    assert reasons["labels.csv:7"] == "no image path in column 'file'"
    assert reasons[str(empty)] == "file is empty"
    assert reasons[str(text)].startswith("not an image")
    assert reasons[str(truncated)].startswith("truncated image data")
    assert reasons[str(missing)] == "file not found"
    assert "4 files could not be read" in out["warnings"]
    assert "1 item was skipped while reading the dataset" in out["warnings"]
    assert out["duplicates"] == []  # unreadable files are not reported as duplicates of each other


def test_check_images_false_only_hashes(tmp_path):
    data = _plain(tmp_path, 2)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    data.samples += [Sample(path=text), Sample(path=tmp_path / "gone.png")]
    out = health_report(data, check_images=False).to_dict()
    assert [p["reason"] for p in out["problems"]] == ["file not found"]
    assert out["image_sizes"] == {}


def test_duplicates_inside_a_split_and_leakage_across_splits(tmp_path):
    data = _labelled(tmp_path, {("a", "train"): 4, ("a", "test"): 2}, ["a", "b"])
    train, test = data.samples[:4], data.samples[4:]
    # An exact copy inside train, and a train image copied into test.
    copy_in_train = tmp_path / "train" / "a" / "copy.png"
    copy_in_train.write_bytes(train[0].path.read_bytes())
    test[0].path.write_bytes(train[1].path.read_bytes())
    data.samples.append(Sample(path=copy_in_train, label=0, split="train"))

    out = health_report(data).to_dict()
    assert out["n_leakage"] == 1
    leak, inside = out["duplicates"]  # leaking groups come first
    assert leak["leakage"] is True and leak["splits"] == ["train", "test"]
    assert set(leak["paths"]) == {str(train[1].path), str(test[0].path)}
    assert inside["leakage"] is False and inside["splits"] == ["train"]
    assert set(inside["paths"]) == {str(train[0].path), str(copy_in_train)}
    assert len(leak["sha256"]) == 64
    assert "1 image appears in both train and test (leakage)" in out["warnings"]
    assert "1 image is stored more than once (2 files)" in out["warnings"]


def test_duplicate_with_different_labels_is_warned(tmp_path):
    data = _labelled(tmp_path, {("a", "train"): 1, ("b", "train"): 1}, ["a", "b"])
    data.samples[1].path.write_bytes(data.samples[0].path.read_bytes())
    assert "1 duplicated image has conflicting labels" in health_report(data).warnings


def test_image_size_statistics(tmp_path):
    samples = [
        Sample(path=_image(tmp_path / f"{i}_{w}x{h}.png", size=(w, h)))
        for i, (w, h) in enumerate([(10, 20), (30, 40), (50, 60), (50, 60)])
    ]
    out = health_report(Dataset(root=tmp_path, format="folders", samples=samples)).to_dict()
    assert out["image_sizes"] == {
        "n": 4,
        "width": {"min": 10, "median": 40, "max": 50},
        "height": {"min": 20, "median": 50, "max": 60},
        "n_distinct": 3,
    }


def test_caption_statistics_with_tokens_and_limit(tmp_path):
    data = _plain(tmp_path, 3)
    data.samples[0].captions = ["chest x-ray", "frontal chest radiograph with no acute findings"]
    data.samples[1].captions = ["small left pleural effusion"]

    def count_tokens(texts):
        return [len(t.split()) for t in texts]

    caps = health_report(data, count_tokens=count_tokens, max_tokens=4).to_dict()["captions"]
    assert caps["n"] == 3 and caps["n_images_without"] == 1
    assert caps["chars"] == {"min": 11, "median": 27, "max": 47}
    assert caps["tokens"] == {"min": 2, "median": 4, "max": 7}
    assert caps["n_over_token_limit"] == 1

    warnings = health_report(data, count_tokens=count_tokens, max_tokens=4).warnings
    assert "1 caption is longer than 4 tokens and will be truncated" in warnings
    assert "1 image has no caption" in warnings
    assert "tokens" not in health_report(data).captions


def test_progress_events_reach_the_total(tmp_path):
    events = []
    health_report(_plain(tmp_path, 30), callback=events.append)
    progress = [e for e in events if isinstance(e, ProgressUpdated)]
    assert progress and all(e.stage == "check images" and e.total == 30 for e in progress)
    assert progress[-1].done == 30
    assert [e.done for e in progress] == sorted(e.done for e in progress)


def test_progress_events_are_throttled(tmp_path, monkeypatch):
    monkeypatch.setattr(health, "PROGRESS_INTERVAL_S", 3600.0)
    events = []
    health_report(_plain(tmp_path, 40), callback=events.append)
    assert [(e.done, e.total) for e in events] == [(0, 40), (40, 40)]


def test_should_stop_returns_a_partial_report(tmp_path):
    data = _plain(tmp_path, 50)
    data.samples.append(Sample(path=tmp_path / "gone.png"))
    calls = []

    def stop_after_first_look():
        calls.append(1)
        return len(calls) > 1

    report = health_report(data, should_stop=stop_after_first_look)
    out = report.to_dict()
    assert out["complete"] is False
    assert out["n_images"] == 51  # counts that need no file access are still whole
    assert any(w.startswith("Check stopped early:") for w in out["warnings"])
    checked = int(out["warnings"][0].split(": ")[1].split(" of ")[0])
    assert checked < 51


@pytest.mark.parametrize("n_workers", [1, 4])
def test_report_is_the_same_whatever_the_thread_count(tmp_path, monkeypatch, n_workers):
    monkeypatch.setattr(health, "IO_WORKERS", n_workers)
    data = _labelled(tmp_path, {("a", "train"): 5, ("b", "val"): 5}, ["a", "b"])
    data.samples.append(Sample(path=tmp_path / "gone.png", label=0, split="train"))
    out = health_report(data).to_dict()
    assert out["n_unreadable"] == 1 and out["problems"][-1]["path"] == str(tmp_path / "gone.png")
