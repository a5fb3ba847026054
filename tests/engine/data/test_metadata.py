"""Per-image metadata: an annotation file's other columns, and a metadata CSV named for class folders."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.metadata import metadata_columns, read_metadata
from clipstudio.engine.errors import DataError


def _by_name(dataset) -> dict[str, dict[str, str]]:
    return {s.path.name: s.metadata for s in dataset.samples}


def test_an_annotation_csvs_other_columns_become_each_images_metadata(tmp_path, tiny_png):
    for name in ("a.png", "b.png"):
        tiny_png(tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text(
        "image,label,patient_id,sex,site,split\n"
        "images/a.png,normal,P1,F,site1,test\n"
        "images/b.png,pneumonia,P2,,site2,test\n", encoding="utf-8")

    dataset = load_dataset(tmp_path / "labels.csv")

    assert _by_name(dataset) == {"a.png": {"patient_id": "P1", "sex": "F", "site": "site1"},
                                 "b.png": {"patient_id": "P2", "site": "site2"}}  # an empty cell: no value
    assert [s.group for s in dataset.samples] == ["P1", "P2"]  # still the patient group of the splits
    assert metadata_columns(dataset) == ["patient_id", "sex", "site"]  # 'patient' would name the same column


def test_a_jsonl_entrys_scalar_keys_become_metadata_and_lists_do_not(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    entry = {"image": "a.png", "caption": "a chest x-ray", "age": 61, "smoker": True, "dose": 1.5,
             "findings": ["effusion"], "scanner": None}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(entry) + "\n", encoding="utf-8")

    dataset = load_dataset(tmp_path / "pairs.jsonl")

    assert dataset.samples[0].metadata == {"age": "61", "smoker": "true", "dose": "1.5"}


def test_a_metadata_csv_attaches_its_columns_to_class_folder_images_and_counts_what_does_not_fit(
        tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 2})
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "file_name,sex,site\n"
        "normal/normal_0.png,F,site1\n"  # below the dataset folder
        "pneumonia_1.png,M,site2\n"  # a bare file name, unique in the dataset
        "xray/normal/normal_1.png,M,site2\n"  # below the CSV's folder
        "normal/gone.png,F,site1\n"  # no such image
        "normal/normal_0.png,M,site3\n", encoding="utf-8")  # a repeat: the first values stay
    dataset = load_dataset(data)

    read = read_metadata(meta, dataset)

    assert _by_name(read.dataset) == {
        "normal_0.png": {"sex": "F", "site": "site1"}, "normal_1.png": {"sex": "M", "site": "site2"},
        "normal_2.png": {}, "pneumonia_0.png": {}, "pneumonia_1.png": {"sex": "M", "site": "site2"}}
    assert all(not s.metadata for s in dataset.samples)  # the dataset read is left as it was
    assert (read.matched, read.unknown_rows, read.without_row, read.repeated_rows) == (3, 1, 2, 1)
    summary = read.summary()
    assert "\n" not in summary and str(meta) in summary
    assert "metadata for 3 of 5 images (columns: sex, site)" in summary
    assert "1 row names no image of the dataset, skipped (e.g. line 5: 'normal/gone.png')" in summary
    assert "2 images have no row (e.g. 'normal/normal_2.png')" in summary
    assert metadata_columns(read.dataset) == ["sex", "site"]


def test_a_metadata_csv_adds_its_columns_to_an_annotation_files_own(tmp_path, tiny_png):
    tiny_png(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("image,label,site\na.png,normal,site1\n", encoding="utf-8")
    (tmp_path / "extra.csv").write_text("path;scanner;site\na.png;GE;site9\n", encoding="utf-8")

    read = read_metadata(tmp_path / "extra.csv", load_dataset(tmp_path / "labels.csv"))

    assert read.dataset.samples[0].metadata == {"site": "site9", "scanner": "GE"}  # the named file wins


def test_a_bare_name_two_images_share_matches_neither(tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "xray", {"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}})
    (tmp_path / "meta.csv").write_text("image,site\na_0.png,site1\n", encoding="utf-8")

    read = read_metadata(tmp_path / "meta.csv", load_dataset(data))

    assert read.matched == 0 and read.unknown_rows == 1 and read.without_row == 4


def test_a_metadata_csv_without_an_image_column_names_the_file_and_the_columns_found(tmp_path, make_class_folders):
    dataset = load_dataset(make_class_folders(tmp_path / "xray", {"a": 1, "b": 1}))
    meta = tmp_path / "meta.csv"
    meta.write_text("picture,sex\na_0.png,F\n", encoding="utf-8")

    with pytest.raises(DataError) as caught:
        read_metadata(meta, dataset)

    message = str(caught.value)
    assert str(meta) in message and "columns found: picture, sex" in message and "file_name" in message


@pytest.mark.parametrize(("content", "words"), [
    (b"", "is empty"),
    (b"image,sex\n\"a_0.png,F\n", "can't read the metadata file as CSV"),
    (b"image,sex\n\xff\xfe,F\n", "is not UTF-8 text"),
])
def test_a_bad_metadata_csv_is_one_data_error_naming_it(tmp_path, make_class_folders, content, words):
    dataset = load_dataset(make_class_folders(tmp_path / "xray", {"a": 1, "b": 1}))
    meta = tmp_path / "meta.csv"
    meta.write_bytes(content)

    with pytest.raises(DataError, match=words) as caught:
        read_metadata(meta, dataset)
    assert str(meta) in str(caught.value)


def test_a_missing_metadata_file_is_a_data_error(tmp_path, make_class_folders):
    dataset = load_dataset(make_class_folders(tmp_path / "xray", {"a": 1, "b": 1}))
    with pytest.raises(DataError, match="not found"):
        read_metadata(tmp_path / "nope.csv", dataset)
