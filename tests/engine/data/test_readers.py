"""Dataset readers: format detection, each reader, and bad input that must not crash a load."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data import FORMATS, detect_format, load_dataset, load_dataset_from_config
from clipstudio.engine.errors import ConfigError, DataError


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def names(dataset) -> list[str]:
    return [p.name for p in dataset.paths]


def reasons(dataset) -> dict[str, str]:
    return {p.path: p.reason for p in dataset.problems}


def tree(root: Path) -> list[tuple[str, float]]:
    return sorted((str(p), p.stat().st_mtime) for p in root.rglob("*"))


# --- class folders ---------------------------------------------------------------------------


def test_class_folders_labels_come_from_sorted_folder_names(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"pneumonia": 2, "normal": 3})

    ds = load_dataset(root)

    assert ds.format == "class_folders"
    assert ds.class_names == ["normal", "pneumonia"]
    assert ds.class_counts() == {"normal": 3, "pneumonia": 2}
    assert ds.is_classification and not ds.has_captions
    assert ds.split_names() == []
    assert all(p.is_absolute() and p == p.resolve() for p in ds.paths)
    assert ds.problems == []


def test_class_folders_accept_chinese_class_names(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "胸片", {"正常": 2, "肺炎": 3})

    ds = load_dataset(root)

    assert ds.class_names == sorted(["正常", "肺炎"])
    assert ds.class_counts() == {"正常": 2, "肺炎": 3}
    assert all("胸片" in str(p) for p in ds.paths)


def test_class_folders_with_split_folders_set_splits(tmp_path, make_class_folders):
    root = make_class_folders(
        tmp_path / "ds",
        {"train": {"cat": 3, "dog": 2}, "valid": {"cat": 1, "dog": 1}, "test": {"cat": 1, "bird": 1}},
    )

    ds = load_dataset(root)

    assert detect_format(root) == "class_folders"
    assert ds.class_names == ["bird", "cat", "dog"]  # union over splits
    assert ds.split_names() == ["train", "val", "test"]
    assert len(ds.split("train")) == 5 and len(ds.split("val")) == 2 and len(ds.split("test")) == 2
    assert {ds.class_names[s.label] for s in ds.split("test").samples} == {"cat", "bird"}


def test_class_folders_find_images_in_nested_folders(tmp_path, make_class_folders, tiny_png):
    root = make_class_folders(tmp_path / "ds", {"a": 1, "b": 1})
    tiny_png(root / "a" / "patient1" / "study2" / "deep.png")

    ds = load_dataset(root)

    assert ds.class_counts() == {"a": 2, "b": 1}
    assert "deep.png" in names(ds)


def test_class_folders_ignore_hidden_and_non_image_files(tmp_path, make_class_folders, tiny_png):
    root = make_class_folders(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0")
    tiny_png(root / "a" / ".hidden.png")
    tiny_png(root / "a" / ".thumbs" / "t.png")
    tiny_png(root / ".cache" / "x.png")
    (root / "b" / "fake.jpg").write_text("text pretending to be a jpeg")  # decoding is not our job

    ds = load_dataset(root)

    assert ds.class_names == ["a", "b"]
    assert ds.class_counts() == {"a": 2, "b": 3}
    assert "fake.jpg" in names(ds)
    assert ds.problems == []


def test_class_folders_sorted_by_split_class_then_path(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "ds", {"test": {"b": 2, "a": 2}, "train": {"b": 2, "a": 2}})

    ds = load_dataset(root)

    keys = [(s.split, s.label, str(s.path)) for s in ds.samples]
    assert [k[0] for k in keys] == ["train"] * 4 + ["test"] * 4
    assert keys[:4] == sorted(keys[:4]) and keys[4:] == sorted(keys[4:])
    assert load_dataset(root).paths == ds.paths


def test_empty_class_folder_is_a_problem_not_a_class(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "empty").mkdir()

    ds = load_dataset(root)

    assert ds.class_names == ["a", "b"]
    assert [(Path(p.path).name, p.reason) for p in ds.problems] == [
        ("empty", "empty class folder (no images); not used as a class")
    ]


def test_single_class_folder_raises_naming_the_folder(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "ds", {"x": 3})
    (root / "empty").mkdir()

    with pytest.raises(
        DataError, match=r"found 1 class folder \(x\); classification needs at least 2"
    ) as err:
        load_dataset(root)
    assert str(root) in str(err.value)


def test_folder_without_images_raises_naming_the_folder(tmp_path):
    root = tmp_path / "nothing"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "readme.txt").write_text("hi")

    with pytest.raises(DataError, match="no images found") as err:
        load_dataset(root)
    assert str(root) in str(err.value)


def test_flat_folder_of_images_explains_the_expected_layout(tmp_path, tiny_png):
    tiny_png(tmp_path / "flat" / "a.png")

    with pytest.raises(DataError, match="each class in its own sub-folder"):
        load_dataset(tmp_path / "flat")


def test_images_beside_class_folders_are_listed_as_problems(tmp_path, make_class_folders, tiny_png):
    root = make_class_folders(tmp_path / "ds", {"a": 1, "b": 1})
    stray = tiny_png(root / "stray.png")

    ds = load_dataset(root)

    assert len(ds) == 2
    assert reasons(ds) == {str(stray.resolve()): "image is not inside a class folder; skipped"}


def test_symlink_loops_and_broken_links_do_not_break_class_folders(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "ds", {"a": 2, "b": 1})
    try:
        os.symlink(root / "a", root / "a" / "loop", target_is_directory=True)
        os.symlink(root / "b" / "self", root / "b" / "self")
        os.symlink(root / "b" / "deleted.png", root / "b" / "broken.png")
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not available")

    ds = load_dataset(root)

    assert ds.class_counts() == {"a": 2, "b": 1}
    assert reasons(ds) == {str(root / "b" / "broken.png"): "broken or looping symbolic link; skipped"}


def test_parent_of_several_datasets_is_refused(tmp_path, make_class_folders, make_clip_finetune):
    make_class_folders(tmp_path / "set" / "folders", {"train": {"a": 1, "b": 1}})
    make_clip_finetune(tmp_path / "set" / "pairs", {"train": 1})

    with pytest.raises(DataError, match=r"several datasets \(folders, pairs\)"):
        load_dataset(tmp_path / "set")


# --- a folder holding one annotation file ------------------------------------------------------


def arch_folder(root: Path, tiny_png) -> Path:
    """ARCH's layout: ``captions.json`` (uuid objects) beside ``images/``."""
    tiny_png(root / "images" / "9f1c.png")
    tiny_png(root / "images" / "77aa.jpg")
    write_json(
        root / "captions.json",
        {
            "0": {"figure_id": "1", "letter": "A", "caption": "tumour cells", "uuid": "9f1c"},
            "1": {"figure_id": "2", "letter": "B", "caption": "stroma", "uuid": "77aa"},
        },
    )
    return root


def open_clip_folder(root: Path, tiny_png) -> Path:
    """open_clip's layout: a tab-separated ``train.csv`` (filepath, title) beside ``imgs/``."""
    tiny_png(root / "imgs" / "a.png")
    tiny_png(root / "imgs" / "b.png")
    write_csv(
        root / "train.csv",
        [["filepath", "title"], ["imgs/a.png", "a slide, with a comma"], ["imgs/b.png", "another slide"]],
        "\t",
    )
    return root


def test_arch_folder_reads_its_captions_json_not_class_folders(tmp_path, tiny_png):
    root = arch_folder(tmp_path / "books_set", tiny_png)

    ds = load_dataset(root)

    assert detect_format(root) == "json_dict"
    assert names(ds) == ["9f1c.png", "77aa.jpg"]
    assert ds.all_captions() == ["tumour cells", "stroma"]
    assert ds.source == root and ds.problems == []


def test_open_clip_folder_reads_its_tab_separated_csv(tmp_path, tiny_png):
    root = open_clip_folder(tmp_path / "quilt", tiny_png)

    ds = load_dataset(root)

    assert detect_format(root) == "csv"
    assert names(ds) == ["a.png", "b.png"]
    assert ds.all_captions() == ["a slide, with a comma", "another slide"]


def test_folder_reads_the_same_as_its_annotation_file(tmp_path, tiny_png):
    root = open_clip_folder(tmp_path / "quilt", tiny_png)

    assert load_dataset(root).paths == load_dataset(root / "train.csv").paths


def test_annotation_file_beside_loose_images_is_read(tmp_path, tiny_png):
    tiny_png(tmp_path / "d" / "x.png")
    write_json(tmp_path / "d" / "captions.json", {"x": "a caption"})

    assert load_dataset(tmp_path / "d").all_captions() == ["a caption"]


def test_one_annotation_file_per_split_at_the_root(tmp_path, tiny_png):
    root = open_clip_folder(tmp_path / "quilt", tiny_png)
    tiny_png(root / "imgs" / "c.png")
    write_csv(root / "val.csv", [["filepath", "title"], ["imgs/c.png", "held out"]], "\t")

    ds = load_dataset(root)

    assert ds.split_names() == ["train", "val"]
    assert ds.split("val").all_captions() == ["held out"]


def test_several_annotation_files_beside_images_name_the_files(tmp_path, tiny_png):
    root = arch_folder(tmp_path / "set", tiny_png)
    write_csv(root / "extra.csv", [["file_name", "text"], ["images/9f1c.png", "x"]])

    with pytest.raises(DataError) as err:
        load_dataset(root)
    assert str(err.value) == (
        f"{root} holds several annotation files (captions.json, extra.csv) beside its images; choose one of them."
    )


def test_class_folders_beside_a_stray_csv_stay_class_folders(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "ds", {"a": 2, "b": 2})
    write_csv(root / "labels.csv", [["file", "label"], ["a/a_0.png", "a"]])

    ds = load_dataset(root)

    assert ds.format == "class_folders" and ds.class_names == ["a", "b"]


def test_parent_of_arch_sets_is_refused_naming_them(tmp_path, tiny_png):
    arch_folder(tmp_path / "arch" / "books_set", tiny_png)
    arch_folder(tmp_path / "arch" / "pubmed_set", tiny_png)

    with pytest.raises(DataError, match=r"several datasets \(books_set, pubmed_set\)"):
        load_dataset(tmp_path / "arch")


# --- CLIP-Finetune ---------------------------------------------------------------------------


def test_clip_finetune_root_reads_each_split(tmp_path, make_clip_finetune):
    root = make_clip_finetune(tmp_path / "pairs", {"train": 3, "val": 2})

    ds = load_dataset(root)

    assert ds.format == "clip_finetune"
    assert ds.split_names() == ["train", "val"]
    assert len(ds.split("train")) == 3 and len(ds.split("val")) == 2
    assert ds.samples[0].captions == ["train image 0"]
    assert ds.samples[0].path == (root / "train" / "imgs" / "train_0.png").resolve()
    assert ds.class_names == [] and ds.problems == []


@pytest.mark.parametrize("target", ["val", "val/img_text_pair.json"])
def test_clip_finetune_single_split_has_no_split(tmp_path, make_clip_finetune, target):
    root = make_clip_finetune(tmp_path / "pairs", {"train": 3, "val": 2})

    ds = load_dataset(root / target)

    assert detect_format(root / target) == "clip_finetune"
    assert len(ds) == 2
    assert ds.split_names() == []
    assert names(ds) == ["val_0.png", "val_1.png"]


# --- JSON list -------------------------------------------------------------------------------


def test_json_list_with_user_named_keys(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    tiny_png(tmp_path / "b.png")
    ann = write_json(
        tmp_path / "ann.json",
        [{"picture": "a.png", "report": "left"}, {"picture": "b.png", "report": "right"}],
    )

    ds = load_dataset(ann, image_key="picture", caption_key="report")

    assert ds.format == "json_list"
    assert names(ds) == ["a.png", "b.png"]
    assert ds.all_captions() == ["left", "right"]


def test_json_list_finds_common_key_names(tmp_path, tiny_png):
    tiny_png(tmp_path / "images" / "a.png")
    ann = write_json(tmp_path / "ann.json", [{"file_name": "images/a.png", "text": "a chest film"}])

    ds = load_dataset(ann)

    assert ds.all_captions() == ["a chest film"]


def test_json_list_unknown_user_key_names_the_keys_found(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = write_json(tmp_path / "ann.json", [{"img": "a.png", "caption": "x"}])

    with pytest.raises(DataError, match="no key named 'picture'; keys found: img, caption") as err:
        load_dataset(ann, image_key="picture")
    assert str(ann) in str(err.value)


def test_json_list_without_image_key_lists_accepted_names(tmp_path):
    ann = write_json(tmp_path / "ann.json", [{"picture": "a.png", "caption": "x"}])

    with pytest.raises(
        DataError, match="no image file key; keys found: picture, caption; accepted names: img"
    ):
        load_dataset(ann)


def test_several_captions_per_image(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = write_json(tmp_path / "ann.json", [{"img": "a.png", "captions": ["first", "second", ""]}])

    ds = load_dataset(ann)

    assert len(ds) == 1
    assert ds.samples[0].captions == ["first", "second"]


def test_duplicate_entries_merge_into_one_sample(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    tiny_png(tmp_path / "b.png")
    ann = write_json(
        tmp_path / "ann.json",
        [
            {"img": "a.png", "caption": "one"},
            {"img": "b.png", "caption": "other"},
            {"img": "./a.png", "caption": "two"},
            {"img": "a.png", "caption": "one"},
        ],
    )

    ds = load_dataset(ann)

    assert names(ds) == ["a.png", "b.png"]
    assert ds.samples[0].captions == ["one", "two"]
    assert ds.problems == []


def test_json_list_label_key_gives_classes(tmp_path, tiny_png):
    for n in "abc":
        tiny_png(tmp_path / f"{n}.png")
    rows = [
        {"img": "a.png", "label": "肺炎"},
        {"img": "b.png", "label": "正常"},
        {"img": "c.png", "label": "肺炎"},
    ]
    ds = load_dataset(write_json(tmp_path / "ann.json", rows))

    assert ds.class_names == sorted(["正常", "肺炎"])
    assert ds.class_counts() == {"正常": 1, "肺炎": 2}
    assert ds.is_classification and not ds.has_captions


# --- JSON dict -------------------------------------------------------------------------------


def test_json_dict_resolves_ids_with_and_without_extension(tmp_path, tiny_png):
    tiny_png(tmp_path / "images" / "abc.png")
    tiny_png(tmp_path / "images" / "def.jpg")
    ann = write_json(tmp_path / "captions.json", {"abc": "first", "def.jpg": ["second", "third"]})

    ds = load_dataset(ann)

    assert detect_format(ann) == "json_dict"
    assert names(ds) == ["abc.png", "def.jpg"]
    assert ds.samples[1].captions == ["second", "third"]


def test_json_dict_with_arch_style_object_values(tmp_path, tiny_png):
    tiny_png(tmp_path / "images" / "9f1c.png")
    tiny_png(tmp_path / "images" / "77aa.jpg")
    ann = write_json(
        tmp_path / "captions.json",
        {
            "0": {"figure_id": "1", "letter": "A", "caption": "tumour cells", "uuid": "9f1c"},
            "1": {"figure_id": "2", "letter": "B", "caption": "stroma", "uuid": "77aa"},
        },
    )

    ds = load_dataset(ann)

    assert names(ds) == ["9f1c.png", "77aa.jpg"]
    assert ds.all_captions() == ["tumour cells", "stroma"]


def test_json_dict_without_images_folder_uses_json_folder(tmp_path, tiny_png):
    tiny_png(tmp_path / "x.png")
    ds = load_dataset(write_json(tmp_path / "caps.json", {"x": "a caption"}))

    assert names(ds) == ["x.png"]


def test_json_dict_missing_image_names_the_key(tmp_path, tiny_png):
    tiny_png(tmp_path / "imgs" / "x.png")
    ann = write_json(tmp_path / "caps.json", {"x": "ok", "gone": "missing"})

    ds = load_dataset(ann)

    assert len(ds) == 1
    assert reasons(ds) == {f'{ann}["gone"]': "image not found: gone"}


# --- JSONL and CSV ---------------------------------------------------------------------------


def test_hugging_face_metadata_jsonl_in_images_folder(tmp_path, tiny_png):
    folder = tmp_path / "hf"
    for i in range(3):
        tiny_png(folder / f"{i}.png")
    write_jsonl(
        folder / "metadata.jsonl", [{"file_name": f"{i}.png", "text": f"caption {i}"} for i in range(3)]
    )

    ds = load_dataset(folder)

    assert detect_format(folder) == "jsonl"
    assert names(ds) == ["0.png", "1.png", "2.png"]
    assert ds.all_captions() == ["caption 0", "caption 1", "caption 2"]


def test_hugging_face_metadata_per_split_folder(tmp_path, tiny_png):
    for split in ("train", "test"):
        tiny_png(tmp_path / "hf" / split / "a.png")
        write_jsonl(tmp_path / "hf" / split / "metadata.jsonl", [{"file_name": "a.png", "text": split}])

    ds = load_dataset(tmp_path / "hf")

    assert ds.format == "jsonl"
    assert ds.split_names() == ["train", "test"]
    assert ds.split("test").all_captions() == ["test"]


def test_jsonl_bad_line_is_a_problem_naming_the_line(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = tmp_path / "index.jsonl"
    ann.write_text('{"file_name": "a.png", "text": "ok"}\n\n{"file_name": "b.png", "te\n', encoding="utf-8")

    ds = load_dataset(ann)

    assert len(ds) == 1
    assert list(reasons(ds)) == [f"{ann}:3"]
    assert "not valid JSON" in reasons(ds)[f"{ann}:3"]


def test_open_clip_tsv_is_read_with_tabs(tmp_path, tiny_png):
    tiny_png(tmp_path / "imgs" / "a, b.png")
    ann = write_csv(
        tmp_path / "train.tsv", [["filepath", "title"], ["imgs/a, b.png", "a caption, with a comma"]], "\t"
    )

    ds = load_dataset(ann)

    assert detect_format(ann) == "csv"
    assert names(ds) == ["a, b.png"]
    assert ds.all_captions() == ["a caption, with a comma"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_detected(tmp_path, tiny_png, delimiter):
    tiny_png(tmp_path / "a.png")
    ann = write_csv(tmp_path / "index.csv", [["image", "caption"], ["a.png", "hello"]], delimiter)

    assert load_dataset(ann).all_captions() == ["hello"]


def test_csv_label_column_gives_classes(tmp_path, tiny_png):
    for n in "abc":
        tiny_png(tmp_path / f"{n}.png")
    ann = write_csv(
        tmp_path / "labels.csv",
        [["file", "label", "text"], ["a.png", "1", "x"], ["b.png", "10", "y"], ["c.png", "2", "z"]],
    )

    ds = load_dataset(ann)

    assert ds.class_names == ["1", "2", "10"]  # numeric labels sort as numbers
    assert [ds.class_names[s.label] for s in ds.samples] == ["1", "10", "2"]
    assert ds.all_captions() == ["x", "y", "z"]


def test_metadata_csv_in_folder_is_detected(tmp_path, tiny_png):
    tiny_png(tmp_path / "d" / "a.png")
    write_csv(tmp_path / "d" / "metadata.csv", [["file_name", "text"], ["a.png", "hi"]])

    assert detect_format(tmp_path / "d") == "csv"
    assert load_dataset(tmp_path / "d").all_captions() == ["hi"]


def test_csv_without_file_column_lists_columns_and_accepted_names(tmp_path):
    ann = write_csv(tmp_path / "index.csv", [["name", "caption"], ["a.png", "x"]])

    with pytest.raises(DataError) as err:
        load_dataset(ann)
    message = str(err.value)
    assert str(ann) in message
    assert "columns found: name, caption" in message
    assert "file_name, filepath" in message


def test_csv_problems_name_the_line(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = write_csv(
        tmp_path / "index.csv", [["file_name", "text"], ["a.png", "ok"], ["b.png", "gone"], ["a.png", ""]]
    )

    ds = load_dataset(ann)

    assert len(ds) == 1
    assert reasons(ds) == {f"{ann}:3": "image not found: b.png", f"{ann}:4": "'text' is empty"}


# --- bad input -------------------------------------------------------------------------------


def test_missing_image_is_a_problem_and_the_rest_loads(tmp_path, make_clip_finetune):
    root = make_clip_finetune(tmp_path / "pairs", {"val": 3})
    (root / "val" / "imgs" / "val_1.png").unlink()

    ds = load_dataset(root / "val")

    assert names(ds) == ["val_0.png", "val_2.png"]
    ann = (root / "val" / "img_text_pair.json").resolve()
    assert reasons(ds) == {f"{ann}[1]": "image not found: val_1.png"}


def test_paths_outside_the_dataset_folder_are_refused(tmp_path, tiny_png):
    outside = tiny_png(tmp_path / "secret.png")
    tiny_png(tmp_path / "ds" / "ok.png")
    ann = write_json(
        tmp_path / "ds" / "ann.json",
        [
            {"img": "ok.png", "caption": "fine"},
            {"img": "../../etc/passwd", "caption": "escape"},
            {"img": "../secret.png", "caption": "escape"},
            {"img": str(outside), "caption": "absolute"},
        ],
    )

    ds = load_dataset(ann)

    assert names(ds) == ["ok.png"]
    assert [p.path for p in ds.problems] == [f"{ann}[1]", f"{ann}[2]", f"{ann}[3]"]
    assert all(
        p.reason.startswith("refused:") and "outside the dataset folder" in p.reason for p in ds.problems
    )


def test_paths_outside_the_dataset_folder_load_when_allowed(tmp_path, tiny_png):
    outside = tiny_png(tmp_path / "shared" / "x.png")
    ann = write_json(
        tmp_path / "ds" / "ann.json",
        [{"img": "../shared/x.png", "caption": "relative"}, {"img": str(outside), "caption": "absolute"}],
    )

    ds = load_dataset(ann, allow_outside_root=True)

    assert ds.paths == [outside.resolve()]
    assert ds.samples[0].captions == ["relative", "absolute"]


def test_symlink_leading_outside_is_refused(tmp_path, tiny_png):
    outside = tiny_png(tmp_path / "elsewhere" / "x.png")
    (tmp_path / "ds").mkdir()
    try:
        os.symlink(outside, tmp_path / "ds" / "link.png")
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not available")
    ann = write_json(tmp_path / "ds" / "ann.json", [{"img": "link.png", "caption": "x"}])

    with pytest.raises(DataError, match="refused unless allowed"):
        load_dataset(ann)
    assert load_dataset(ann, allow_outside_root=True).paths == [outside.resolve()]


def test_malformed_json_error_names_file_and_line(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(
        '[\n {"img": "a.png", "caption": "x"},\n {"img": "b.png" "caption": "y"}\n]\n', encoding="utf-8"
    )

    with pytest.raises(DataError, match="not valid JSON at line 3") as err:
        load_dataset(ann)
    assert str(ann) in str(err.value)


def test_json_that_is_neither_list_nor_dict_raises(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text('"just a string"', encoding="utf-8")

    with pytest.raises(DataError, match="expected a JSON list of entries or an object") as err:
        load_dataset(ann)
    assert str(ann) in str(err.value)


def test_json_list_of_non_objects_raises(tmp_path):
    ann = write_json(tmp_path / "ann.json", ["a.png", "b.png"])

    with pytest.raises(DataError, match="expected a list of objects"):
        load_dataset(ann)


def test_byte_order_mark_is_tolerated(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    (tmp_path / "ann.json").write_text(json.dumps([{"img": "a.png", "caption": "bom"}]), encoding="utf-8-sig")
    write_csv(tmp_path / "ann.csv", [["file_name", "text"], ["a.png", "bom csv"]], encoding="utf-8-sig")

    assert load_dataset(tmp_path / "ann.json").all_captions() == ["bom"]
    assert load_dataset(tmp_path / "ann.csv").all_captions() == ["bom csv"]


@pytest.mark.parametrize("filename", ["ann.json", "ann.jsonl", "ann.csv"])
def test_non_utf8_file_raises_naming_the_file(tmp_path, filename):
    ann = tmp_path / filename
    text = {"ann.json": '[{"img": "é.png", "caption": "Röntgen"}]', "ann.jsonl": '{"img": "é.png"}\n'}
    ann.write_bytes(text.get(filename, "file_name,text\né.png,Röntgen\n").encode("latin-1"))

    with pytest.raises(DataError, match="is not UTF-8") as err:
        load_dataset(ann)
    assert str(ann) in str(err.value)


def test_entries_of_the_wrong_type_are_problems(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = write_json(
        tmp_path / "ann.json",
        [
            {"img": "a.png", "caption": "good"},
            "a.png",
            {"img": 7, "caption": "number path"},
            {"img": "a.png", "caption": {"text": "nested"}},
            {"img": "a.png", "caption": ["ok", 3]},
        ],
    )

    ds = load_dataset(ann)

    assert len(ds) == 1 and ds.samples[0].captions == ["good"]
    assert reasons(ds) == {
        f"{ann}[1]": "expected an object, found text",
        f"{ann}[2]": "'img' is a number; expected a file path",
        f"{ann}[3]": "'caption' is an object; expected text or a list of text",
        f"{ann}[4]": "'caption' holds a number; expected text",
    }


def test_null_and_empty_captions_are_problems(tmp_path, tiny_png):
    for n in "abcd":
        tiny_png(tmp_path / f"{n}.png")
    ann = write_json(
        tmp_path / "ann.json",
        [
            {"img": "a.png", "caption": None},
            {"img": "b.png", "caption": "   "},
            {"img": "c.png", "caption": []},
            {"img": "d.png", "caption": "kept"},
        ],
    )

    ds = load_dataset(ann)

    assert names(ds) == ["d.png"]
    assert reasons(ds) == {
        f"{ann}[0]": "'caption' is null",
        f"{ann}[1]": "'caption' is empty",
        f"{ann}[2]": "'caption' is empty",
    }


def test_missing_keys_are_problems(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    ann = write_jsonl(
        tmp_path / "ann.jsonl",
        [
            {"file_name": "a.png", "text": "ok"},
            {"text": "no file"},
            {"file_name": "a.png"},
            {"file_name": "", "text": "x"},
        ],
    )

    ds = load_dataset(ann)

    assert len(ds) == 1
    assert reasons(ds) == {
        f"{ann}:2": "missing 'file_name'",
        f"{ann}:3": "missing 'text'",
        f"{ann}:4": "'file_name' is empty",
    }


def test_all_entries_unusable_raises_with_the_first_problem(tmp_path):
    ann = write_json(
        tmp_path / "ann.json", [{"img": "gone.png", "caption": "x"}, {"img": "gone2.png", "caption": "y"}]
    )

    with pytest.raises(
        DataError, match=r"all 2 entries were skipped \(first: .*ann.json\[0\]: image not found"
    ):
        load_dataset(ann)


def test_empty_annotation_file_raises(tmp_path):
    with pytest.raises(DataError, match="no entries found"):
        load_dataset(write_json(tmp_path / "ann.json", []))


def test_missing_path_raises(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_unsupported_file_type_raises(tmp_path, tiny_png):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="is an image"):
        detect_format(tiny_png(tmp_path / "a.png"))


def test_images_dir_option_sets_where_paths_point(tmp_path, tiny_png):
    tiny_png(tmp_path / "pictures" / "a.png")
    ann = write_json(tmp_path / "notes" / "ann.json", [{"img": "a.png", "caption": "x"}])

    ds = load_dataset(ann, images_dir=tmp_path / "pictures")

    assert ds.paths == [(tmp_path / "pictures" / "a.png").resolve()]
    assert ds.root == (tmp_path / "pictures").resolve()


def test_a_data_config_is_read_with_its_keys_and_images_folder(tmp_path, tiny_png):
    tiny_png(tmp_path / "pictures" / "a.png")
    ann = write_json(tmp_path / "notes" / "ann.json", [{"picture": "a.png", "report": "left lung"}])
    cfg = DataConfig(path=str(ann), image_key="picture", caption_key="report", images_dir=str(tmp_path / "pictures"))

    ds = load_dataset_from_config(cfg)

    assert ds.paths == [(tmp_path / "pictures" / "a.png").resolve()]
    assert ds.all_captions() == ["left lung"]


def test_a_data_config_reaching_outside_the_folder_needs_its_permission(tmp_path, tiny_png):
    outside = tiny_png(tmp_path / "elsewhere" / "a.png")
    ann = write_json(tmp_path / "set" / "ann.json", [{"img": str(outside), "caption": "x"}])

    with pytest.raises(DataError, match="outside"):
        load_dataset_from_config(DataConfig(path=str(ann)))
    assert load_dataset_from_config(DataConfig(path=str(ann), allow_outside_root=True)).paths == [outside.resolve()]


def test_a_data_config_without_a_path_is_a_config_error():
    with pytest.raises(ConfigError, match="data.path is empty"):
        load_dataset_from_config(DataConfig())


def test_windows_style_paths_are_found(tmp_path, tiny_png):
    tiny_png(tmp_path / "imgs" / "sub" / "a.png")
    ds = load_dataset(write_csv(tmp_path / "i.csv", [["image", "text"], ["imgs\\sub\\a.png", "x"]]))

    assert names(ds) == ["a.png"]


def test_reading_never_writes_into_the_dataset_folder(tmp_path, make_class_folders, make_clip_finetune):
    folders = make_class_folders(tmp_path / "folders", {"a": 2, "b": 2})
    pairs = make_clip_finetune(tmp_path / "pairs", {"train": 2, "val": 1})
    before = tree(tmp_path)

    load_dataset(folders)
    load_dataset(pairs)

    assert tree(tmp_path) == before


def test_detect_format_names_are_the_public_formats(
    tmp_path, tiny_png, make_class_folders, make_clip_finetune
):
    tiny_png(tmp_path / "a.png")
    found = {
        detect_format(make_class_folders(tmp_path / "cf", {"a": 1, "b": 1})),
        detect_format(make_clip_finetune(tmp_path / "pairs", {"train": 1})),
        detect_format(write_json(tmp_path / "l.json", [{"img": "a.png", "caption": "x"}])),
        detect_format(write_json(tmp_path / "d.json", {"a": "x"})),
        detect_format(write_jsonl(tmp_path / "x.jsonl", [{"file_name": "a.png", "text": "x"}])),
        detect_format(write_csv(tmp_path / "x.csv", [["file_name", "text"], ["a.png", "x"]])),
    }
    assert found == set(FORMATS)


@pytest.mark.slow  # a 20,000-file index
def test_large_jsonl_index_loads_without_opening_each_file(tmp_path, monkeypatch):
    folder = tmp_path / "big"
    (folder / "imgs").mkdir(parents=True)
    n = 20_000
    for i in range(n):
        (folder / "imgs" / f"{i:06d}.png").touch()
    write_jsonl(
        folder / "metadata.jsonl",
        [{"file_name": f"imgs/{i:06d}.png", "text": f"caption {i}"} for i in range(n)],
    )
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))

    ds = load_dataset(folder)

    # No timing asserted here (shared, noisy machines): the index is read without decoding any image.
    assert len(ds) == n and ds.problems == []
    assert opened == []


# --- real datasets ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_pneumoniamnist_class_folders(shared_datasets):
    ds = load_dataset(shared_datasets / "pneumoniamnist" / "folders")

    assert ds.format == "class_folders"
    assert ds.class_names == ["normal", "pneumonia"]
    assert ds.split_names() == ["train", "test"]
    assert len(ds.split("train")) == 600 and len(ds.split("test")) == 300
    assert ds.class_counts() == {"normal": 450, "pneumonia": 450}
    assert ds.problems == []


@pytest.mark.slow
def test_real_medpix_val_pairs(shared_datasets):
    ds = load_dataset(shared_datasets / "medpix2_caption" / "pairs" / "val")

    assert ds.format == "clip_finetune"
    assert len(ds) == 253
    assert all(len(s.captions) == 1 and s.path.is_file() for s in ds.samples)
    assert ds.problems == []
