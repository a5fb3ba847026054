"""The clipstudio command line as a user meets it: exit codes, one-line errors, JSON outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clipstudio.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("inspect", "zeroshot", "retrieve", "search", "demo"):
        assert command in out


def test_no_arguments_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "usage: clipstudio" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["zeroshot", "somewhere"],  # --model is required
        ["retrieve", "x", "--model", "builtin", "--k", "five"],
        ["search", "x", "--model", "builtin"],  # --text or --image is required
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("clipstudio")
    assert "Traceback" not in err


def test_missing_data_folder_is_one_line_error(capsys, tmp_path):
    code, _, err = run(capsys, "inspect", str(tmp_path / "nope"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in err


def test_user_error_in_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipstudio", "inspect", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("clipstudio: error:")


def test_inspect_json_has_documented_keys(capsys, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 4, "pneumonia": 2},
                                                   "test": {"normal": 2, "pneumonia": 2}})
    (data / "train" / "normal" / "broken.png").write_bytes(b"not a png")
    out_json = tmp_path / "report.json"
    code, out, _ = run(capsys, "inspect", str(data), "--json", str(out_json))
    assert code == 0
    report = json.loads(out_json.read_text(encoding="utf-8"))
    for key in ("n_images", "n_unreadable", "classes", "splits", "duplicates", "problems"):
        assert key in report
    assert report["classes"] == {"normal": 7, "pneumonia": 4}
    assert report["n_unreadable"] == 1
    assert any("broken.png" in p["path"] for p in report["problems"])
    assert "normal" in out and "pneumonia" in out


def test_zeroshot_json_on_tiny_clip(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"red": 3, "green": 3, "blue": 2})
    out_json = tmp_path / "zs.json"
    preds = tmp_path / "preds.csv"
    code, out, _ = run(capsys, "zeroshot", str(data), "--model", str(tiny_clip_dir),
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


def test_zeroshot_class_texts_file(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"正常": 2, "肺炎": 2})
    texts = tmp_path / "class_texts.json"
    texts.write_text(json.dumps({"正常": "正常的胸片", "肺炎": ["肺炎的胸片", "肺部感染"]}, ensure_ascii=False),
                     encoding="utf-8")
    code, _, _ = run(capsys, "zeroshot", str(data), "--model", str(tiny_clip_dir), "--class-texts", str(texts),
                     "--json", str(tmp_path / "zs.json"))
    assert code == 0
    assert json.loads((tmp_path / "zs.json").read_text(encoding="utf-8"))["classes"] == ["正常", "肺炎"]


def test_zeroshot_rejects_a_template_without_placeholder(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = run(capsys, "zeroshot", str(data), "--model", str(tiny_clip_dir), "--template", "an x-ray")
    assert code == 2 and "{class_name}" in err


def test_zeroshot_unknown_split_names_the_splits(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    code, _, err = run(capsys, "zeroshot", str(data), "--model", str(tiny_clip_dir), "--split", "val")
    assert code == 2 and "train" in err and "test" in err


def test_retrieve_json_on_pairs(capsys, tmp_path, make_clip_finetune, tiny_clip_dir):
    data = make_clip_finetune(tmp_path / "pairs", {"train": 3, "val": 5})
    out_json = tmp_path / "r.json"
    code, out, _ = run(capsys, "retrieve", str(data), "--model", str(tiny_clip_dir), "--k", "1", "3",
                       "--json", str(out_json))
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["n"] == 5 and d["split"] == "val"
    assert set(d["image_to_text"]) == {"R@1", "R@3"} and set(d["text_to_image"]) == {"R@1", "R@3"}
    assert set(d["mean_rank"]) == {"image_to_text", "text_to_image"}
    assert d["image_to_text"]["R@3"] >= d["image_to_text"]["R@1"]
    assert "image -> text" in out


def test_retrieve_on_class_folders_explains_captions_are_needed(capsys, tmp_path, make_class_folders,
                                                                 tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = run(capsys, "retrieve", str(data), "--model", str(tiny_clip_dir))
    assert code == 2 and "caption" in err


def test_search_text_prints_ranked_images(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    code, out, _ = run(capsys, "search", str(data), "--model", str(tiny_clip_dir), "--text", "a red square",
                       "--top", "4")
    assert code == 0
    ranked = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(ranked) == 4 and ranked[0].split()[0] == "1"


def test_search_image_finds_itself_first(capsys, tmp_path, make_clip_finetune, tiny_clip_dir):
    data = make_clip_finetune(tmp_path / "pairs", {"val": 4})
    query = data / "val" / "imgs" / "val_2.png"
    code, out, _ = run(capsys, "search", str(data / "val"), "--model", str(tiny_clip_dir), "--image", str(query),
                       "--top", "2")
    assert code == 0
    first_hit = out.splitlines()[1]
    assert first_hit.endswith("val_2.png")
    assert "caption" in out


def test_search_missing_query_image_is_user_error(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = run(capsys, "search", str(data), "--model", str(tiny_clip_dir), "--image", str(tmp_path / "q.png"))
    assert code == 2 and "q.png" in err


def test_offline_hub_id_fails_fast_naming_builtin(capsys, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    code, _, err = run(capsys, "zeroshot", str(data), "--model", "openai/clip-vit-base-patch32")
    assert code == 2
    assert "builtin" in err and "openai/clip-vit-base-patch32" in err


def test_json_to_stdout(capsys, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 3})
    code, out, _ = run(capsys, "inspect", str(data), "--json", "-")
    assert code == 0
    assert json.loads(out)["classes"] == {"a": 2, "b": 3}


def test_nothing_is_written_into_the_dataset(capsys, tmp_path, make_class_folders, tiny_clip_dir):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    run(capsys, "inspect", str(data))
    run(capsys, "zeroshot", str(data), "--model", str(tiny_clip_dir))
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
