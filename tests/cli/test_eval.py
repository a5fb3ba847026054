"""`clipstudio eval RUN DATA`: a run's model before and after fine-tuning, on the same images."""

from __future__ import annotations

import json
import shutil

import pytest

from clipstudio.engine.evaluation import wise
from clipstudio.engine.models import load_model
from tests.fixtures_data import write_png
from tests.fixtures_runs import colour_classes


@pytest.mark.slow
def test_eval_json_has_before_and_after_like_zeroshot(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", trained["full"], trained["data"], "--json", out_json,
                         "--device", "cpu", "--no-cache")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(d) == {"before", "after", "paired"}
    for side in ("before", "after"):
        for key in ("n", "classes", "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "split"):
            assert key in d[side]
        assert d[side]["n"] == 18 and d[side]["split"] == "all"
    assert d["after"]["model"] == str(trained["full"]) and d["after"]["wise_alpha"] is None
    assert d["before"]["model"] == str(trained["start"])
    assert "before" in out and "after" in out and "balanced accuracy" in out


@pytest.mark.slow
def test_eval_wise_alpha_zero_is_the_starting_model_and_is_labelled(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, _ = cli("eval", trained["full"], trained["data"], "--wise-alpha", "0",
                       "--json", out_json, "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["wise_alpha"] == 0.0
    assert d["after"]["confusion_matrix"] == d["before"]["confusion_matrix"]
    assert "WiSE-FT alpha 0" in out


@pytest.mark.slow
def test_linear_probe_eval_scores_the_trained_head(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    # The old spelling, --data DATA, still works.
    code, out, _ = cli("eval", trained["probe"], "--data", trained["data"], "--json", out_json,
                       "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["accuracy"] == 1.0 > d["before"]["accuracy"]


def test_eval_without_data_asks_for_it(cli, trained):
    code, _, err = cli("eval", trained["full"])
    assert code == 2 and "DATA is required" in err and len(err.strip().splitlines()) == 1



def _binary_data(root):
    """Two of the run's colour classes, as train/ and test/ folders: a binary task with a validation part."""
    for split, n in (("train", 10), ("test", 5)):
        for name, rgb in (("blue", (40, 40, 200)), ("red", (200, 40, 40))):
            for i in range(n):
                write_png(root / split / name / f"{name}_{i}.png", tuple(v - 10 * (i % 5) for v in rgb))
    return root


@pytest.mark.slow
def test_eval_json_has_the_clinical_blocks_of_the_trained_model_and_the_paired_comparison(cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", run, _binary_data(tmp_path / "data"), "--json", out_json, "--device", "cpu")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    after = d["after"]
    assert after["n"] == 10 and after["validation"]["split"] == "carved-val"
    for key in ("auc", "roc", "calibration", "conformal", "operating_point"):
        assert key in after and key not in d["before"]
    assert after["calibration"]["temperature"] is not None and after["operating_point"]["from"] == "validation"
    paired = d["paired"]
    assert (paired["a"], paired["b"], paired["n"]) == ("before", "after", 10)
    for key in ("accuracy", "balanced_accuracy", "macro_auc"):
        assert "ci95" in paired[key]["difference"] and paired[key]["verdict"]
    assert paired["mcnemar"]["p_value"] <= 1
    assert "paired: after - before" in out and "McNemar" in out and "operating point" in out


@pytest.mark.slow
def test_eval_stores_the_fitted_operating_point_and_applies_it_next_time(cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    data = _binary_data(tmp_path / "data")
    first = tmp_path / "first.json"
    code, _, err = cli("eval", run, data, "--json", first, "--device", "cpu")
    assert code == 0 and "calibration.json" in err
    stored = json.loads((run / "calibration.json").read_text(encoding="utf-8"))
    fitted = json.loads(first.read_text(encoding="utf-8"))["after"]
    assert stored["temperature"] == fitted["calibration"]["temperature"]
    assert stored["operating_point"]["threshold"] == fitted["operating_point"]["threshold"]
    assert stored["fitted_on"]["split"] == "carved-val"

    # A threshold of 0 calls every image positive: the next eval must apply it, not choose its own.
    stored["operating_point"]["threshold"] = 0.0
    (run / "calibration.json").write_text(json.dumps(stored), encoding="utf-8")
    second = tmp_path / "second.json"
    code, out, err = cli("eval", run, data, "--json", second, "--device", "cpu")
    assert code == 0 and "Applied the operating point stored" in err and "stored in the run folder" in out
    point = json.loads(second.read_text(encoding="utf-8"))["after"]["operating_point"]
    assert point["from"] == "run folder" and point["threshold"] == 0.0
    assert point["sensitivity"]["value"] == 1.0 and point["specificity"]["value"] == 0.0

    # --operating-point chooses anew on validation.
    code, _, err = cli("eval", run, data, "--json", second, "--device", "cpu", "--operating-point", "youden")
    point = json.loads(second.read_text(encoding="utf-8"))["after"]["operating_point"]
    assert code == 0 and point["from"] == "validation" and point["threshold"] == fitted["operating_point"]["threshold"]


@pytest.mark.slow
def test_eval_of_a_wise_interpolation_leaves_the_run_folder_alone(cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    code, _, _ = cli("eval", run, _binary_data(tmp_path / "data"), "--wise-alpha", "0.5", "--device", "cpu")
    assert code == 0 and not (run / "calibration.json").exists()


@pytest.mark.slow
def test_eval_report_has_the_training_curves_and_the_before_after_comparison(cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    report = tmp_path / "report.html"
    code, _, err = cli("eval", run, _binary_data(tmp_path / "data"), "--report", report, "--device", "cpu")
    assert code == 0, err
    html = report.read_text(encoding="utf-8")
    for anchor in ("training", "comparison", "operating-point", "model", "statement"):
        assert f'<section id="{anchor}">' in html
    assert "learning_rate" in html and "McNemar" in html


def test_eval_report_into_a_folder_fails_in_one_line(cli, tmp_path, trained):
    code, _, err = cli("eval", trained["full"], trained["data"], "--report", tmp_path)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_group_gives_the_trained_models_subgroups(cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", run, _binary_data(tmp_path / "data"), "--json", out_json, "--device", "cpu",
                         "--group", r"_([0-1])\.png$")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    subgroups = d["after"]["subgroups"]
    assert {k: g["n"] for k, g in subgroups["groups"].items()} == {"0": 2, "1": 2, "(no match)": 6}
    assert "subgroups" not in d["before"] and "subgroups" in out and "(no match)" in out


@pytest.mark.slow
def test_eval_group_by_a_metadata_column_gives_the_trained_models_subgroups_and_names_the_column(
        cli, tmp_path, trained):
    run = shutil.copytree(trained["full"], tmp_path / "run")
    data = _binary_data(tmp_path / "data")
    meta = tmp_path / "meta.csv"  # the test images, below the dataset folder
    meta.write_text("file,scanner\n" + "".join(f"test/{c}/{c}_{i}.png,{'GE' if i < 2 else 'Siemens'}\n"
                                                for c in ("blue", "red") for i in range(5)), encoding="utf-8")
    out_json, report = tmp_path / "eval.json", tmp_path / "report.html"
    code, _, err = cli("eval", run, data, "--json", out_json, "--device", "cpu", "--metadata", meta,
                       "--group-by", "scanner", "--report", report)
    assert code == 0, err
    subgroups = json.loads(out_json.read_text(encoding="utf-8"))["after"]["subgroups"]
    assert subgroups["by"] == "column 'scanner'"
    assert {k: g["n"] for k, g in subgroups["groups"].items()} == {"GE": 4, "Siemens": 6}
    assert "Subgroups by <b>metadata column &#x27;scanner&#x27;</b>" in report.read_text(encoding="utf-8")


def test_eval_refuses_group_with_group_by_in_one_line(cli, tmp_path):
    code, _, err = cli("eval", tmp_path, tmp_path, "--group", "(x)", "--group-by", "sex")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not allowed with argument --group" in err


def _split_colours(root):
    """The run's three colour classes as train/ and test/ folders: validation is carved from train/."""
    colour_classes(root / "train")
    colour_classes(root / "test", per_class=3)
    return root


@pytest.mark.slow
def test_eval_wise_alpha_val_chooses_alpha_on_the_validation_images_and_reports_on_test(
        cli, tmp_path, trained, monkeypatch):
    loaded = []
    monkeypatch.setattr(wise, "load_model", lambda spec, **kw: loaded.append(spec) or load_model(spec, **kw))
    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", trained["full"], _split_colours(tmp_path / "data"), "--wise-alpha", "val",
                         "--json", out_json, "--device", "cpu")
    assert code == 0, err
    assert sorted(loaded) == sorted([str(trained["full"]), str(trained["start"])])  # each model loaded once
    after = json.loads(out_json.read_text(encoding="utf-8"))["after"]
    choice = after["wise_choice"]
    assert [row["alpha"] for row in choice["sweep"]] == [round(0.1 * i, 1) for i in range(11)]
    best = max(row["balanced_accuracy"] for row in choice["sweep"])
    assert choice["value"] == best and after["wise_alpha"] == choice["alpha"]
    assert max(r["alpha"] for r in choice["sweep"] if r["balanced_accuracy"] == best) == choice["alpha"]
    assert choice["metric"] == "balanced_accuracy" and "train" in choice["validation"]
    assert after["split"] == "test" and after["n"] == 9 and choice["n"] < 18  # chosen on part of train/
    assert f"Chose WiSE-FT alpha {choice['alpha']:g}" in err and "chosen on" in out


def test_eval_wise_alpha_val_without_validation_images_apart_fails_in_one_line(cli, trained):
    # No test/ folder: the evaluated images are all the images, validation ones included.
    code, _, err = cli("eval", trained["full"], trained["data"], "--wise-alpha", "val", "--device", "cpu")
    errors = [line for line in err.splitlines() if line.startswith("clipstudio: error:")]
    assert code == 2 and len(errors) == 1 and "can't be chosen on validation" in errors[0]


def test_eval_wise_alpha_must_be_a_number_or_val(cli, trained):
    code, _, err = cli("eval", trained["full"], trained["data"], "--wise-alpha", "middle")
    assert code == 2 and "--wise-alpha" in err and "'val'" in err and len(err.strip().splitlines()) == 1
