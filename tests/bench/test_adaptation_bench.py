"""The adaptation benchmarks' own logic: the official splits as class folders, the K-shot summary and plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.adaptation import _command, official_folders
from bench.common import DATASETS
from bench.kshot import combined, main, markdown, merged, plot, summary


@pytest.mark.skipif(not (DATASETS / "breastmnist" / "breastmnist.npz").is_file(), reason="needs ../shared/datasets")
def test_the_official_split_becomes_class_folders_with_every_image_once(tmp_path):
    root = official_folders("breastmnist", tmp_path)
    arrays = np.load(DATASETS / "breastmnist" / "breastmnist.npz")
    classes = json.loads((DATASETS / "breastmnist" / "classes.json").read_text(encoding="utf-8"))["classes"]
    for split in ("train", "val", "test"):
        labels = arrays[f"{split}_labels"].reshape(-1)
        for c, name in enumerate(classes):
            assert len(list((root / split / name).glob("*.png"))) == int((labels == c).sum())
    first = next((root / "test").rglob("test_0.png"))
    assert np.array_equal(np.asarray(Image.open(first)), arrays["test_images"][0])
    assert first.parent.name == classes[int(arrays["test_labels"][0, 0])]
    assert official_folders("breastmnist", tmp_path) == root  # written once


def test_kshot_summary_table_and_plot(tmp_path):
    rows = [
        {"dataset": "d", "method": m, "shots": k, "seed": s, "balanced_accuracy": 0.1 * k + 0.01 * s}
        for m in ("probe", "tip_adapter_f") for k in (1, 2) for s in (0, 1, 2)
    ]
    means = summary(rows)
    probe_k2 = next(m for m in means if m["method"] == "probe" and m["shots"] == 2)
    assert probe_k2["seeds"] == 3 and probe_k2["mean"] == pytest.approx(0.21) and probe_k2["std"] == pytest.approx(0.01)
    text = markdown(means, {"d": 0.05})
    assert "| linear probe (automatic prior) | 0.110 ± 0.010 | 0.210 ± 0.010 |" in text and "zero-shot: 0.050" in text
    plot(means, {"d": 0.05}, tmp_path / "k.png")
    assert Image.open(tmp_path / "k.png").size == (520, 470)


def test_kshot_merge_replaces_only_the_points_run_again():
    earlier = {"rows": [{"dataset": "a", "method": "probe", "shots": 1, "seed": 0, "balanced_accuracy": 0.1},
                        {"dataset": "b", "method": "probe", "shots": 2, "seed": 0, "balanced_accuracy": 0.22},
                        {"dataset": "b", "method": "probe", "shots": 1, "seed": 0, "balanced_accuracy": 0.2},
                        {"dataset": "b", "method": "tip_adapter_f", "shots": 1, "seed": 0, "balanced_accuracy": 0.3}],
               "zero_shot": {"a": 0.05, "b": 0.4}}
    new = [{"dataset": "b", "method": "probe", "shots": 1, "seed": 0, "balanced_accuracy": 0.25}]
    rows, zero = merged(earlier, new, {"b": 0.41})
    assert sorted((r["dataset"], r["method"], r["balanced_accuracy"]) for r in rows) == [
        ("a", "probe", 0.1), ("b", "probe", 0.22), ("b", "probe", 0.25), ("b", "tip_adapter_f", 0.3)]
    assert zero == {"a": 0.05, "b": 0.41}


def test_the_recorded_commands_name_placeholders_not_this_machines_folders(tmp_path):
    runs = tmp_path / "runs"
    official = runs / "official" / "breastmnist"
    subset = DATASETS / "bloodmnist" / "folders"

    shown_official = _command(["train", str(official), "--output", str(runs / "breastmnist-full")],
                              "breastmnist", official, runs)  # fmt: skip
    shown_subset = _command(["zeroshot", str(subset), "--json", str(runs / "b.json")], "bloodmnist", subset, runs)

    assert shown_official == "clipstudio train OFFICIAL/breastmnist --output RUNS/breastmnist-full"
    assert shown_subset == "clipstudio zeroshot ../shared/datasets/bloodmnist/folders --json RUNS/b.json"


def test_kshot_combine_joins_seeds_run_apart_and_a_later_file_wins(tmp_path, monkeypatch, capsys):
    def row(seed: int, value: float) -> dict:
        return {"dataset": "b", "method": "clip_lora_none", "shots": 1, "seed": seed, "balanced_accuracy": value}

    first = {"rows": [row(0, 0.5), row(1, 0.6), {**row(0, 0.9), "shots": 2}], "zero_shot": {"b": 0.4}}
    second = {"rows": [row(1, 0.7), row(2, 0.8)], "zero_shot": {"b": 0.41}}
    rows, zero = combined([first, second])
    assert sorted((r["shots"], r["seed"], r["balanced_accuracy"]) for r in rows) == [
        (1, 0, 0.5), (1, 1, 0.7), (1, 2, 0.8), (2, 0, 0.9)]
    assert zero == {"b": 0.41}

    files = []
    for i, part in enumerate((first, second)):
        files.append(tmp_path / f"part{i}.json")
        files[-1].write_text(json.dumps(part), encoding="utf-8")
    monkeypatch.setenv("CLIPSTUDIO_BENCH_OUT", str(tmp_path / "out"))
    assert main(["--combine", *map(str, files)]) == 0
    written = json.loads((tmp_path / "out" / "kshot.json").read_text(encoding="utf-8"))
    assert len(written["rows"]) == 4 and (tmp_path / "out" / "kshot.png").is_file()
    table = (tmp_path / "out" / "kshot.md").read_text(encoding="utf-8")
    assert "| 0.667 ± 0.153 | 0.900 (1 seed) |" in table
    with pytest.raises(SystemExit):
        main(["--combine", str(tmp_path / "missing.json")])
    assert "no such file" in capsys.readouterr().err
