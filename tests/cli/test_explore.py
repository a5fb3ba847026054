from __future__ import annotations

import csv
import json

import pytest

from tests.engine.explore.test_exploration import dataset_with_resaved_copies


@pytest.fixture
def data(tmp_path):
    root, pairs = dataset_with_resaved_copies(tmp_path / "data", copies=2)
    return root, pairs


def test_json_lists_label_issues_duplicates_outliers_and_the_map_csv(cli, tmp_path, data, tiny_clip_dir):
    data, pairs = data
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    out, map_csv = tmp_path / "out" / "explore.json", tmp_path / "map.csv"
    code, summary, _ = cli("explore", data, "--model", tiny_clip_dir, "--device", "cpu", "--json", out,
                           "--map", map_csv, "--folds", "2", "--top", "5")
    assert code == 0, summary
    result = json.loads(out.read_text())
    assert {"data", "model", "n_images", "classes", "label_issues", "duplicates", "outliers", "map"} <= set(result)
    assert result["n_images"] == 34 and result["classes"] == ["a", "b"]
    assert len(result["label_issues"]["top"]) == 5
    assert {"path", "split", "given", "suggested", "label_quality", "likely_mistake"} == set(
        result["label_issues"]["top"][0]
    )
    groups = result["duplicates"]["groups"]
    assert len(groups) == 2 and all(set(g["paths"]) in pairs and g["across_splits"] for g in groups)
    assert result["duplicates"]["n_across_splits"] == 2
    assert len(result["outliers"]["top"]) == 5
    rows = list(csv.DictReader(map_csv.open()))
    assert len(rows) == 34 and set(rows[0]) == {"path", "split", "label", "x", "y"}
    assert "Near-duplicate groups" in summary and "ACROSS SPLITS" in summary
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before  # the dataset folder is untouched


def test_json_to_stdout_is_pure_json(cli, data, tiny_clip_dir):
    data, _ = data
    code, out, err = cli("explore", data, "--model", tiny_clip_dir, "--device", "cpu", "--json", "-", "--folds", "2")
    assert code == 0 and "map" not in json.loads(out) and "Loading model" in err


def test_training_losses_of_a_run_are_listed(cli, trained, tmp_path):
    out = tmp_path / "r.json"
    code, summary, _ = cli("explore", trained["data"], "--model", trained["start"], "--device", "cpu",
                           "--json", out, "--folds", "2", "--run", trained["probe"])
    assert code == 0, summary
    losses = json.loads(out.read_text())["training_losses"]
    assert losses["method"] == "linear_probe" and losses["top"][0]["loss"] >= losses["top"][-1]["loss"]
    assert "Hardest training images" in summary


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--map", "map.txt"], "--map map.txt: the file name must end in .csv"),
        (["--threshold", "1.5"], "--threshold: must be between 0 and 1"),
        (["--picture-match", "-1"], "--picture-match: must be between 0 and 1"),
        (["--folds", "1"], "--folds: must be at least 2"),
        (["--run", "nowhere"], "is not a training run folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli, data, tiny_clip_dir, extra, needle):
    data, _ = data
    code, out, err = cli("explore", data, "--model", tiny_clip_dir, *extra)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and out == ""


def test_missing_data_folder_exits_2_with_one_line(cli, tmp_path, tiny_clip_dir):
    code, _, err = cli("explore", tmp_path / "missing", "--model", tiny_clip_dir)
    assert code == 2 and err.startswith("clipstudio: error:") and len(err.strip().splitlines()) == 1
