"""The corrections file: kept in the app's data folder, applied by every read, undoable, never in the dataset."""

from __future__ import annotations

import csv

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.corrections import (
    EXCLUDE,
    RELABEL,
    Correction,
    add_corrections,
    corrections_file,
    export_cleaned_list,
    read_corrections,
    remove_corrections,
)
from clipstudio.engine.storage.paths import user_data_dir


def tree(root):
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_corrections_round_trip_through_the_file(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    marked = [
        Correction("/data/a, with comma.png", EXCLUDE),
        Correction("/data/b.png", RELABEL, "pneumonia, severe"),
    ]

    add_corrections(root, marked)

    assert read_corrections(root) == marked
    assert corrections_file(root).is_relative_to(user_data_dir())
    # The same folder reached by another path is the same dataset.
    assert read_corrections(root / "." / "normal" / "..") == marked


def test_marking_an_image_again_replaces_its_correction(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    add_corrections(root, [Correction("/x.png", RELABEL, "normal")])

    add_corrections(root, [Correction("/x.png", EXCLUDE)])

    assert read_corrections(root) == [Correction("/x.png", EXCLUDE)]


def test_reader_applies_exclusions_and_relabels(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 2})
    before = load_dataset(root)
    normal = [str(s.path) for s in before.samples if s.label == 0]

    add_corrections(root, [Correction(normal[0], EXCLUDE), Correction(normal[1], RELABEL, "pneumonia")])
    after = load_dataset(root)

    assert len(after) == len(before) - 1
    assert normal[0] not in map(str, after.paths)
    assert after.class_counts() == {"normal": 1, "pneumonia": 3}
    assert after.corrections_applied == 2 and after.corrections_warning is None


def test_corrections_of_missing_images_or_classes_change_nothing(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    first = str(load_dataset(root).paths[0])
    add_corrections(root, [Correction(str(tmp_path / "gone.png"), EXCLUDE), Correction(first, RELABEL, "covid")])

    ds = load_dataset(root)

    assert len(ds) == 4 and ds.class_counts() == {"normal": 2, "pneumonia": 2}
    assert ds.corrections_applied == 0


def test_undo_one_correction_then_all(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 2})
    paths = [str(p) for p in load_dataset(root).paths]
    add_corrections(root, [Correction(paths[0], EXCLUDE), Correction(paths[1], EXCLUDE)])

    left = remove_corrections(root, [paths[0]])

    assert left == [Correction(paths[1], EXCLUDE)]
    assert len(load_dataset(root)) == 4
    remove_corrections(root)
    assert len(load_dataset(root)) == 5 and load_dataset(root).corrections_applied == 0
    assert not corrections_file(root).exists()


def test_nothing_is_written_into_the_dataset_folder(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 2})
    before = tree(root)
    paths = [str(p) for p in load_dataset(root).paths]

    add_corrections(root, [Correction(paths[0], EXCLUDE), Correction(paths[2], RELABEL, "pneumonia")])
    load_dataset(root)
    remove_corrections(root, [paths[0]])

    assert tree(root) == before


def test_bad_corrections_file_names_it_and_the_dataset_loads_uncorrected(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    target = corrections_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("path,action,label\n/x.png,delete,\n", encoding="utf-8")

    ds = load_dataset(root)

    assert len(ds) == 4 and ds.corrections_applied == 0
    assert str(target) in ds.corrections_warning
    assert "line 2" in ds.corrections_warning and "delete" in ds.corrections_warning


def test_unreadable_corrections_file_is_reported(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    target = corrections_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\xff\xfe\x00garbage")

    ds = load_dataset(root)

    assert len(ds) == 4
    assert ds.corrections_warning.startswith(str(target))


def test_export_cleaned_list_opens_as_the_corrected_dataset(tmp_path, make_class_folders):
    root = make_class_folders(tmp_path / "xray", {"train": {"normal": 3, "pneumonia": 2}, "test": {"normal": 1, "pneumonia": 1}})
    paths = [str(p) for p in load_dataset(root).paths]
    add_corrections(root, [Correction(paths[0], EXCLUDE), Correction(paths[1], RELABEL, "pneumonia")])
    corrected = load_dataset(root)

    out = export_cleaned_list(corrected, tmp_path / "out" / "cleaned.csv")

    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [str(p) for p in corrected.paths]
    assert rows[0].keys() == {"path", "label", "split"}
    reopened = load_dataset(out, allow_outside_root=True)
    assert reopened.class_counts() == corrected.class_counts()
    assert [s.split for s in reopened.samples] == [s.split for s in corrected.samples]
