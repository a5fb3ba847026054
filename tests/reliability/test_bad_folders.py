"""Awkward folder layouts, one test id per case: empty, single or 5,000 classes, hidden files, nesting, links,
and folders holding an annotation file beside their images (ARCH, open_clip)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures_data import write_png
from tests.reliability.harness import Harness, assert_one_clear_message

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def two_classes(root: Path) -> Path:
    for name, colour in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
        for i in range(2):
            write_png(root / name / f"{name}_{i}.png", (colour[0] - 20 * i, colour[1], colour[2]))
    return root


def test_empty_class_folder_is_a_problem_not_a_class(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    (root / "c").mkdir()

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.dataset.class_names == ["a", "b"]
    assert_one_clear_message(loaded, root / "c", "empty class folder (no images)")
    assert loaded.n_scored == 4


def test_single_class_is_refused_naming_the_folder(tmp_path, harness: Harness):
    root = tmp_path / "data"
    write_png(root / "only" / "x.png")

    message = harness.refused(root, watch=tmp_path)

    assert message == f"{root}: found 1 class folder (only); classification needs at least 2."


def test_single_class_beside_an_empty_folder_is_refused(tmp_path, harness: Harness):
    root = tmp_path / "data"
    write_png(root / "only" / "x.png")
    (root / "empty").mkdir()

    message = harness.refused(root, watch=tmp_path)

    assert "found 1 class folder (only)" in message


def test_folder_with_no_images_is_refused(tmp_path, harness: Harness):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "notes.txt").write_text("scan list")

    message = harness.refused(root, watch=tmp_path)

    assert message.startswith(f"{root}: no images found")


def _distinct_pngs(n: int) -> list[bytes]:
    """``n`` different 1x1 PNGs; encoded once each, in memory (about a second for 5,000)."""
    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("RGB", (1, 1), (i % 256, i // 256, 7)).save(buffer, format="PNG", compress_level=0)
        out.append(buffer.getvalue())
    return out


@pytest.mark.slow  # a 5,000-class scale test
def test_five_thousand_classes_load_and_score(ram_folder, harness: Harness):
    root = ram_folder / "data"
    n = 5_000
    for i, data in enumerate(_distinct_pngs(n)):
        folder = root / f"class_{i:04d}"
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(data)

    loaded = harness.loads(root, watch=ram_folder)

    assert len(loaded.dataset.class_names) == n and len(loaded.dataset) == n
    assert loaded.report.problems == [] and loaded.report.duplicates == []
    assert loaded.n_scored == n
    assert f"class_{n - 1:04d}" in loaded.inspect.out
    # One line per class, not the 25 million cells of the confusion matrix (that stays in --json).
    assert f"confusion matrix: {n} x {n}, too wide to show here" in loaded.zeroshot.out
    assert len(loaded.zeroshot.out) < 1_000_000


def test_hidden_files_and_folders_are_ignored(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "a" / "._a_0.png").write_bytes(b"\0\5\26\7 AppleDouble resource fork")  # macOS copies leave these
    write_png(root / "a" / ".hidden" / "secret.png")
    write_png(root / ".thumbnails" / "t.png")
    (root / "b" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "b" / "desktop.ini").write_text("[.ShellClassInfo]\n")

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.dataset.class_names == ["a", "b"]
    assert sorted(p.name for p in loaded.dataset.paths) == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    assert loaded.report.problems == []
    assert "warning" not in loaded.zeroshot.err


def test_nested_folders_belong_to_their_top_class_folder(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    deep = write_png(root / "a" / "patient 7" / "2019" / "series 1" / "img.png", (210, 30, 30))

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.dataset.class_counts() == {"a": 3, "b": 2}
    assert deep in loaded.dataset.paths
    assert loaded.report.problems == [] and loaded.n_scored == 5


def test_image_beside_the_class_folders_is_a_problem(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    stray = write_png(root / "stray.png", (1, 2, 3))

    loaded = harness.loads(root, watch=tmp_path)

    assert_one_clear_message(loaded, stray, "image is not inside a class folder; skipped")
    assert loaded.n_scored == 4


def test_folder_symlink_loop_is_followed_once(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    try:
        os.symlink(root / "a", root / "a" / "again", target_is_directory=True)
        os.symlink(root, root / "b" / "up", target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")

    loaded = harness.loads(root, watch=tmp_path)

    # Each image once, in its own class: the link up to the root does not pull class a into b.
    assert loaded.dataset.class_counts() == {"a": 2, "b": 2}
    assert len(set(loaded.dataset.paths)) == 4
    assert loaded.report.problems == [] and loaded.n_scored == 4


def _refuse_listing(monkeypatch, folder: Path) -> None:
    """Listing ``folder`` fails as it would without read permission (root can list anything)."""
    real_scandir = os.scandir

    def guarded(path="."):
        if os.path.realpath(path) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)


def test_unreadable_class_folder_simulated(tmp_path, monkeypatch, harness: Harness):
    root = two_classes(tmp_path / "data")
    locked = root / "c"
    write_png(locked / "c_0.png", (40, 200, 40))
    _refuse_listing(monkeypatch, locked)

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.dataset.class_names == ["a", "b"]
    assert_one_clear_message(loaded, locked, "can't read folder: Permission denied")


@pytest.mark.skipif(IS_ROOT or os.name == "nt", reason="root can list any folder")
def test_unreadable_class_folder_real(tmp_path, harness: Harness):
    root = two_classes(tmp_path / "data")
    locked = root / "c"
    write_png(locked / "c_0.png", (40, 200, 40))
    locked.chmod(0)
    try:
        loaded = harness.loads(root, watch=tmp_path)
    finally:
        locked.chmod(0o755)

    assert_one_clear_message(loaded, locked, "can't read folder")


# --- a folder holding one annotation file beside its images --------------------------------------
# Labelled, so zero-shot can score them too; the real ARCH and open_clip files carry only captions
# (tests/engine/data/test_readers.py reads those shapes).

ANNOTATED = [("a_0", "a", "a red square"), ("a_1", "a", "a red square again"),
             ("b_0", "b", "a blue square"), ("b_1", "b", "a blue square again")]


def arch_folder(root: Path) -> Path:
    """ARCH: ``captions.json`` ({"0": {"caption", "uuid", ...}}) beside ``images/``; ids lack the extension."""
    entries = {}
    for i, (stem, label, caption) in enumerate(ANNOTATED):
        write_png(root / "images" / f"{stem}.png", (200, 40, 40) if label == "a" else (40, 40, 200))
        entries[str(i)] = {"figure_id": str(i), "letter": "A", "caption": caption, "uuid": stem, "label": label}
    (root / "captions.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return root


def open_clip_folder(root: Path, extra_rows: tuple[str, ...] = ()) -> Path:
    """open_clip: a tab-separated ``train.csv`` (filepath, title) beside ``imgs/``; captions hold commas."""
    rows = ["filepath\ttitle\tlabel"]
    for stem, label, caption in ANNOTATED:
        write_png(root / "imgs" / f"{stem}.png", (200, 40, 40) if label == "a" else (40, 40, 200))
        rows.append(f"imgs/{stem}.png\t{caption}, seen at 40x\t{label}")
    (root / "train.csv").write_text("\n".join([*rows, *extra_rows]) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("layout", [arch_folder, open_clip_folder], ids=["arch_captions_json", "open_clip_tsv_csv"])
def test_folder_with_one_annotation_file_reads_that_file(tmp_path, harness: Harness, layout):
    root = layout(tmp_path / "data")

    loaded = harness.loads(root, watch=tmp_path)

    assert loaded.dataset.class_names == ["a", "b"] and loaded.dataset.has_captions
    assert sorted(p.name for p in loaded.dataset.paths) == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    assert loaded.report.problems == [] and loaded.n_scored == 4


def test_tab_separated_row_naming_a_missing_image_is_skipped(tmp_path, harness: Harness):
    root = open_clip_folder(tmp_path / "data", ("imgs/gone.png\ta lost slide\ta",))

    loaded = harness.loads(root, watch=tmp_path)

    assert_one_clear_message(loaded, f"{root / 'train.csv'}:6", "image not found: imgs/gone.png")
    assert loaded.n_scored == 4


def test_several_annotation_files_beside_the_images_are_refused_naming_them(tmp_path, harness: Harness):
    root = open_clip_folder(tmp_path / "data")
    (root / "notes.json").write_text('{"reviewer": "x"}', encoding="utf-8")

    message = harness.refused(root, watch=tmp_path)

    assert message == (
        f"{root} holds several annotation files (notes.json, train.csv) beside its images; choose one of them."
    )
