"""`clipstudio zeroshot DATA --model M`: metrics, prompts, splits and a run folder as the model."""

from __future__ import annotations

import csv
import json


def test_zeroshot_json_on_tiny_clip(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 3, "green": 3, "blue": 2})
    out_json = tmp_path / "zs.json"
    preds = tmp_path / "preds.csv"
    code, out, _ = cli("zeroshot", str(data), "--model", str(tiny_clip_dir),
                       "--template", "a {class_name} square", "--json", str(out_json),
                       "--predictions", str(preds))
    assert code == 0, out
    d = json.loads(out_json.read_text(encoding="utf-8"))
    for key in ("n", "classes", "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "ci95"):
        assert key in d
    assert d["n"] == 8 and d["classes"] == ["blue", "green", "red"]
    assert "top5_accuracy" not in d or d["top5_accuracy"] is None  # fewer than 6 classes
    assert sum(map(sum, d["confusion_matrix"])) == 8
    assert len(preds.read_text(encoding="utf-8").splitlines()) == 9  # header + one row per image
    assert "accuracy" in out


def test_zeroshot_class_texts_file(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"正常": 2, "肺炎": 2})
    texts = tmp_path / "class_texts.json"
    texts.write_text(json.dumps({"正常": "正常的胸片", "肺炎": ["肺炎的胸片", "肺部感染"]}, ensure_ascii=False),
                     encoding="utf-8")
    code, _, _ = cli("zeroshot", str(data), "--model", str(tiny_clip_dir), "--class-texts", str(texts),
                     "--json", str(tmp_path / "zs.json"))
    assert code == 0
    assert json.loads((tmp_path / "zs.json").read_text(encoding="utf-8"))["classes"] == ["正常", "肺炎"]


def test_zeroshot_rejects_a_template_without_placeholder(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = cli("zeroshot", str(data), "--model", str(tiny_clip_dir), "--template", "an x-ray")
    assert code == 2 and "{class_name}" in err


def test_zeroshot_unknown_split_names_the_splits(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    code, _, err = cli("zeroshot", str(data), "--model", str(tiny_clip_dir), "--split", "val")
    assert code == 2 and "train" in err and "test" in err


def test_offline_hub_id_fails_fast_naming_builtin(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = cli("zeroshot", str(data), "--model", "openai/clip-vit-base-patch32")
    assert code == 2
    assert "builtin" in err and "openai/clip-vit-base-patch32" in err


def test_nothing_is_written_into_the_dataset(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    cli("inspect", str(data))
    cli("zeroshot", str(data), "--model", str(tiny_clip_dir))
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_zeroshot_accepts_a_run_folder_as_model(cli, tmp_path, trained):
    out_json = tmp_path / "zs.json"
    code, _, err = cli("zeroshot", trained["data"], "--model", trained["probe"], "--json", out_json,
                       "--device", "cpu")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["model"] == str(trained["probe"]) and d["accuracy"] == 1.0  # the probe's head, not the prompts


def test_zeroshot_json_has_the_clinical_blocks_fitted_on_carved_validation(cli, tmp_path, make_class_folders,
                                                                           tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 10, "pneumonia": 10},
                                                   "test": {"normal": 5, "pneumonia": 5}})
    out_json = tmp_path / "zs.json"
    preds = tmp_path / "preds.csv"
    code, out, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--json", out_json, "--coverage", "0.8",
                         "--operating-point", "specificity=0.5", "--no-cache", "--predictions", preds)
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    # The CSV holds what the app shows: calibrated probabilities, the operating point's calls, the sets.
    rows = list(csv.DictReader(preds.open(encoding="utf-8")))
    assert len(rows) == 10 and "prediction_set" in rows[0]
    assert sum(len(r["prediction_set"].split("; ")) if r["prediction_set"] else 0 for r in rows) == round(
        d["conformal"]["mean_set_size"] * 10)
    called = sum(r["predicted"] == "pneumonia" for r in rows)
    assert called == d["operating_point"]["confusion"]["tp"] + d["operating_point"]["confusion"]["fp"]
    assert d["n"] == 10 and d["split"] == "test" and d["accuracy"] is not None  # today's keys stay
    assert d["validation"]["split"] == "carved-val" and d["validation"]["n"] == 4
    assert d["auc"]["macro"]["n"] == 10 and "ci95" in d["auc"]["macro"]
    assert d["auc"]["positive_class"] == "pneumonia" and "ci95" in d["auc"]["per_class"]["pneumonia"]
    assert d["roc"]["per_class"]["pneumonia"]["roc"]["fpr"][0] == 0.0
    assert d["calibration"]["temperature"] > 0 and d["calibration"]["ece_after"] is not None
    assert d["calibration"]["fitted_on"] == {"split": "validation", "n": 4}
    assert d["conformal"]["coverage_target"] == 0.8 and d["conformal"]["mean_set_size"] >= 0
    point = d["operating_point"]
    assert point["rule"] == "target_specificity" and point["fitted_on"]["n"] == 4 and point["n"] == 10
    for line in ("AUC (pneumonia)", "ECE", "T = ", "conformal sets", "target 80%", "sensitivity", "PPV",
                 "chosen on 4 validation images", "carved from the 'train' split"):
        assert line in out


def test_zeroshot_multiclass_has_no_operating_point_and_fits_nothing_on_the_images_it_reports(
        cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 5, "green": 5, "blue": 5})
    out_json = tmp_path / "zs.json"
    code, out, _ = cli("zeroshot", data, "--model", tiny_clip_dir, "--json", out_json)
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert "operating_point" not in d and set(d["auc"]["per_class"]) == {"red", "green", "blue"}
    # The whole dataset is reported on; its carved validation part lies inside it, so nothing is fitted.
    assert d["validation"]["split"] is None and "among the evaluated images" in d["validation"]["reason"]
    assert d["calibration"]["temperature"] is None and d["conformal"]["coverage"] is None
    assert "no temperature fitted" in out


def test_zeroshot_refuses_a_bad_coverage_or_operating_point_in_one_line(cli, tmp_path, make_class_folders,
                                                                        tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    for flag, value, words in (("--coverage", "1.5", "between 0 and 1"), ("--operating-point", "sens=0.9", "youden")):
        code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, flag, value)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_zeroshot_report_writes_one_self_contained_html_file(cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 10, "pneumonia": 10},
                                                   "test": {"normal": 5, "pneumonia": 5}})
    report = tmp_path / "report.html"
    code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--report", report, "--no-cache")
    assert code == 0, err
    html = report.read_text(encoding="utf-8")
    for anchor in ("dataset", "split-policy", "model", "metrics", "roc", "calibration", "operating-point",
                   "conformal", "errors", "statement"):
        assert f'<section id="{anchor}">' in html
    assert "http:" not in html and str(tiny_clip_dir) in html
    assert f"Wrote the report to {report}" in err


def test_zeroshot_report_ending_in_pdf_writes_a_printed_pdf(qapp, cli, tmp_path, make_class_folders, tiny_clip_dir):
    # qapp: the widgets tests that may follow in this process need Qt's QApplication, not the
    # QGuiApplication the command would make for itself.
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 10, "pneumonia": 10},
                                                   "test": {"normal": 5, "pneumonia": 5}})
    report = tmp_path / "report.pdf"
    code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--report", report, "--no-cache")
    assert code == 0, err
    pdf = report.read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/Subtype /Image" in pdf  # the charts, drawn into the pages
    assert f"Wrote the report to {report}" in err
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["report.pdf"]


def test_zeroshot_report_to_a_folder_fails_in_one_line_before_scoring(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"red": 2, "green": 2})
    for target in (tmp_path, tmp_path / "missing" / "report.html"):
        code, _, err = cli("zeroshot", data, "--model", "no-such-model", "--report", target)
        assert code == 2 and len(err.strip().splitlines()) == 1 and str(target) in err


def test_zeroshot_group_gives_subgroups_by_a_path_pattern_in_json_terminal_and_report(
        cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 10, "pneumonia": 10},
                                                   "test": {"normal": 5, "pneumonia": 5}})
    out_json, report = tmp_path / "zs.json", tmp_path / "report.html"
    code, out, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--json", out_json, "--no-cache",
                         "--group", r"^test/(\w+)/", "--report", report)
    assert code == 0, err
    subgroups = json.loads(out_json.read_text(encoding="utf-8"))["subgroups"]
    assert subgroups["n"] == 10 and {k: g["n"] for k, g in subgroups["groups"].items()} == {
        "normal": 5, "pneumonia": 5}
    assert "accuracy" in subgroups["groups"]["normal"] and isinstance(subgroups["flagged"], list)
    assert "^test/(\\w+)/" in subgroups["grouping"]
    assert "subgroups" in out and "all images" in out and "pneumonia" in out
    assert '<section id="subgroups">' in report.read_text(encoding="utf-8")


def test_zeroshot_refuses_a_bad_or_unmatched_group_pattern_in_one_line(cli, tmp_path, make_class_folders,
                                                                        tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    for pattern, words in (("(site", "Invalid subgroup pattern"), ("site(\\d)", "matches none of the 6 image paths")):
        code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--group", pattern, "--no-cache")
        assert code == 2 and words in err.splitlines()[-1] and err.count("error") == 1, err
        assert "Loading model" not in err  # refused before the model is loaded


def test_zeroshot_group_by_a_metadata_column_of_class_folders_says_what_grouped_them(
        cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 6, "pneumonia": 6},
                                                   "test": {"normal": 4, "pneumonia": 4}})
    meta = tmp_path / "meta.csv"  # a made-up site per image; two test images have no row
    rows = [f"test/{c}/{c}_{i}.png,site{i % 2}" for c in ("normal", "pneumonia") for i in range(3)]
    meta.write_text("image,site\n" + "\n".join(rows) + "\nelsewhere.png,site9\n", encoding="utf-8")
    out_json, report = tmp_path / "zs.json", tmp_path / "report.html"

    code, out, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--json", out_json, "--no-cache",
                         "--metadata", meta, "--group-by", "site", "--report", report)

    assert code == 0, err
    subgroups = json.loads(out_json.read_text(encoding="utf-8"))["subgroups"]
    assert subgroups["by"] == "column 'site'"
    assert {k: g["n"] for k, g in subgroups["groups"].items()} == {"(no value)": 2, "site0": 4, "site1": 2}
    assert "metadata for 6 of 20 images (columns: site)" in err and "elsewhere.png" in err
    assert "by metadata column 'site'" in out
    html = report.read_text(encoding="utf-8")
    assert "Subgroups by <b>metadata column &#x27;site&#x27;</b>" in html and "subgroups by" in html


def test_zeroshot_group_by_a_column_of_the_annotation_file(cli, tmp_path, tiny_png, tiny_clip_dir):
    lines = ["image,label,sex,split"]
    for i in range(12):
        tiny_png(tmp_path / "images" / f"{i}.png", (20 * i, 0, 0))
        lines.append(f"images/{i}.png,{'normal' if i % 2 else 'pneumonia'},{'FM'[i % 3 == 0]},"
                     f"{'test' if i < 8 else 'val'}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_json = tmp_path / "zs.json"

    code, _, err = cli("zeroshot", tmp_path / "labels.csv", "--model", tiny_clip_dir, "--json", out_json,
                       "--no-cache", "--group-by", "SEX")  # named as the file spells it, whatever the case typed

    assert code == 0, err
    subgroups = json.loads(out_json.read_text(encoding="utf-8"))["subgroups"]
    assert subgroups["by"] == "column 'sex'" and {k: g["n"] for k, g in subgroups["groups"].items()} == {
        "F": 5, "M": 3}


def test_zeroshot_refuses_group_with_group_by_and_an_unknown_column_in_one_line(
        cli, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    meta = tmp_path / "meta.csv"
    meta.write_text("image,sex,site\na/a_0.png,F,s1\n", encoding="utf-8")

    code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--group", "(x)", "--group-by", "sex")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--group-by: not allowed with argument --group" in err

    code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--metadata", meta, "--group-by", "age")
    assert code == 2 and "No metadata column 'age'; columns available: sex, site." in err.splitlines()[-1]
    assert "Loading model" not in err  # refused before the model is loaded

    code, _, err = cli("zeroshot", data, "--model", tiny_clip_dir, "--group-by", "sex")
    assert code == 2 and "the images have no metadata" in err.splitlines()[-1]
