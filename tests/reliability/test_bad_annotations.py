"""Bad JSON / JSONL / CSV annotation files, one test id per case.

Each case is a small labelled image-caption dataset (``ds/images/*.png`` + one annotation file) with
one fault. An entry-level fault is skipped with one message naming ``file:line`` or ``file[i]`` and
the reason while the rest loads; a file-level fault (unreadable, not UTF-8, malformed JSON, no image
column...) is refused with one line naming the file. Paths leading outside the dataset folder are
refused unless ``--allow-outside-root`` is given. Nothing in the dataset folder changes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures_data import write_png
from tests.reliability.harness import Harness, assert_one_clear_message

GOOD = [
    {"file_name": "images/a_0.png", "text": "a red square, first", "label": "a"},
    {"file_name": "images/a_1.png", "text": "a red square, second", "label": "a"},
    {"file_name": "images/b_0.png", "text": "a blue square, first", "label": "b"},
    {"file_name": "images/b_1.png", "text": "a blue square, second", "label": "b"},
]
SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv"}


@dataclass
class Case:
    """Where the case lives: ``ds`` (the dataset folder) and ``outside`` (a sibling folder with an image)."""

    ds: Path
    outside: Path

    def write(self, fmt: str, rows: list, *, encoding: str = "utf-8") -> Path:
        """The good rows plus ``rows`` as ``ds/ann.<fmt>``; a ``str`` row goes in as a raw line."""
        path = self.ds / f"ann{SUFFIX[fmt]}"
        everything = GOOD + rows
        if fmt == "json":
            text = json.dumps(everything, ensure_ascii=False, indent=1)
        elif fmt == "jsonl":
            text = "".join(
                (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in everything
            )
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["file_name", "text", "label"])
            for r in everything:
                writer.writerow([r.get("file_name", ""), r.get("text", ""), r.get("label", "")])
            text = buffer.getvalue()
        path.write_bytes(text.encode(encoding))
        return path

    def raw(self, name: str, data: bytes) -> Path:
        path = self.ds / name
        path.write_bytes(data)
        return path


@pytest.fixture
def case(tmp_path) -> Case:
    ds = tmp_path / "ds"
    for i, colour in enumerate([(200, 40, 40), (180, 60, 60), (40, 40, 200), (60, 60, 180)]):
        write_png(ds / "images" / f"{'ab'[i // 2]}_{i % 2}.png", colour)
    outside = tmp_path / "outside"
    write_png(outside / "secret.png", (1, 1, 1))
    return Case(ds, outside)


def _where(path: Path, fmt: str, index: int) -> str:
    """How a problem names entry ``index`` (0-based, counting the good rows) of an annotation file."""
    return f"{path}[{index}]" if fmt == "json" else f"{path}:{index + 2 - (fmt == 'jsonl')}"


# --- one entry is bad: skipped with one message, the rest loads ------------------------------------

SKIPPED: dict[str, tuple[str, Callable[[Case], list], str]] = {
    # id: (format, the bad rows appended to the good ones, the reason given for the first bad row)
    "jsonl_malformed_line": (
        "jsonl",
        lambda c: ['{"file_name": "images/a_0.png", "text": '],
        "not valid JSON",
    ),
    "jsonl_number_of_4301_digits": (
        "jsonl",
        lambda c: ['{"file_name": "images/a_0.png", "label": ' + "9" * 4301 + "}"],
        "a number too long to read",
    ),
    "jsonl_nested_too_deep": ("jsonl", lambda c: ["[" * 100_000 + "]" * 100_000], "nested too deeply"),
    "json_entry_not_an_object": ("json", lambda c: ["images/a_0.png"], "expected an object, found text"),
    "json_image_is_a_number": (
        "json",
        lambda c: [{"file_name": 7, "text": "x", "label": "a"}],
        "'file_name' is a number; expected a file path",
    ),
    "jsonl_caption_is_a_number": (
        "jsonl",
        lambda c: [{"file_name": "images/a_0.png", "text": 42, "label": "a"}],
        "'text' is a number",
    ),
    "jsonl_caption_is_an_object": (
        "jsonl",
        lambda c: [{"file_name": "images/a_0.png", "text": {"en": "x"}, "label": "a"}],
        "'text' is an object",
    ),
    "json_label_is_a_list": (
        "json",
        lambda c: [{"file_name": "images/a_0.png", "text": "x", "label": ["a"]}],
        "'label' is a list",
    ),
    "jsonl_missing_image_key": (
        "jsonl",
        lambda c: [{"text": "no file", "label": "a"}],
        "missing 'file_name'",
    ),
    "jsonl_missing_caption_key": (
        "jsonl",
        lambda c: [{"file_name": "images/a_0.png", "label": "a"}],
        "missing 'text'",
    ),
    "json_null_caption": (
        "json",
        lambda c: [{"file_name": "images/a_0.png", "text": None, "label": "a"}],
        "'text' is null",
    ),
    "json_empty_caption_list": (
        "json",
        lambda c: [{"file_name": "images/a_0.png", "text": [], "label": "a"}],
        "'text' is empty",
    ),
    "csv_empty_caption": (
        "csv",
        lambda c: [{"file_name": "images/a_0.png", "text": "  ", "label": "a"}],
        "'text' is empty",
    ),
    "csv_empty_image_cell": (
        "csv",
        lambda c: [{"file_name": "", "text": "x", "label": "a"}],
        "'file_name' is empty",
    ),
    "csv_missing_image_file": (
        "csv",
        lambda c: [{"file_name": "images/nope.png", "text": "x", "label": "a"}],
        "image not found: images/nope.png",
    ),
    "json_same_image_with_two_labels": (
        "json",
        lambda c: [{"file_name": "images/a_0.png", "text": "x", "label": "b"}],
        "image already listed with label 'a'; label 'b' ignored",
    ),
    "jsonl_dotdot_etc_passwd": (
        "jsonl",
        lambda c: [{"file_name": "../../../../../../../../etc/passwd", "text": "x", "label": "a"}],
        "points outside the dataset folder",
    ),
    "csv_absolute_path_outside": (
        "csv",
        lambda c: [{"file_name": str(c.outside / "secret.png"), "text": "x", "label": "a"}],
        "refused:",
    ),
    "json_relative_path_outside": (
        "json",
        lambda c: [{"file_name": "../outside/secret.png", "text": "x", "label": "a"}],
        "refused:",
    ),
    "jsonl_symlink_leading_outside": ("jsonl", lambda c: [_link_outside(c)], "refused:"),
}


def _link_outside(c: Case) -> dict:
    try:
        os.symlink(c.outside / "secret.png", c.ds / "images" / "link.png")
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")
    return {"file_name": "images/link.png", "text": "x", "label": "a"}


@pytest.mark.parametrize(("fmt", "rows", "reason"), [pytest.param(*v, id=k) for k, v in SKIPPED.items()])
def test_bad_entry_is_skipped_with_one_message(case: Case, harness: Harness, fmt, rows, reason):
    path = case.write(fmt, rows(case))

    loaded = harness.loads(path, watch=case.ds.parent)

    assert_one_clear_message(loaded, _where(path, fmt, len(GOOD)), reason)
    assert sorted(p.name for p in loaded.dataset.paths) == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    assert all(str(p).startswith(str(case.ds)) for p in loaded.dataset.paths)
    assert loaded.n_scored == 4


# --- nothing is wrong, however odd it looks ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_byte_order_mark_is_read_as_utf8(case: Case, harness: Harness, fmt):
    path = case.write(fmt, [], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    loaded = harness.loads(path, watch=case.ds.parent)

    assert loaded.report.problems == []
    assert loaded.dataset.all_captions() == [r["text"] for r in GOOD]
    assert loaded.n_scored == 4


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_caption_of_10k_characters_is_kept_whole_and_reported_over_the_token_limit(
    case: Case, harness: Harness, fmt
):
    long_caption = ("consolidation in the right lower lobe, " * 300)[:10_000].strip() + "."
    path = case.write(fmt, [{"file_name": "images/a_0.png", "text": long_caption, "label": "a"}])

    loaded = harness.loads(path, watch=case.ds.parent)

    assert loaded.report.problems == []
    assert long_caption in loaded.dataset.samples[0].captions
    assert loaded.report.captions["chars"]["max"] == len(long_caption)
    with_model = harness.cli("inspect", path, "--model", harness.model_dir)
    assert with_model.code == 0
    assert "1 caption is longer than 77 tokens and will be truncated" in with_model.out


def test_same_image_listed_twice_merges_its_captions(case: Case, harness: Harness):
    path = case.write(
        "json", [{"file_name": "./images/a_0.png", "text": "the same image again", "label": "a"}]
    )

    loaded = harness.loads(path, watch=case.ds.parent)

    assert loaded.report.problems == []
    assert len(loaded.dataset) == 4
    assert loaded.dataset.samples[0].captions == ["a red square, first", "the same image again"]


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_paths_outside_the_root_load_when_allowed(case: Case, harness: Harness, where):
    target = str(case.outside / "secret.png") if where == "absolute" else "../outside/secret.png"
    path = case.write("csv", [{"file_name": target, "text": "kept", "label": "a"}])

    loaded = harness.loads(
        path, watch=case.ds.parent, allow_outside_root=True, cli_args=("--allow-outside-root",)
    )

    assert loaded.report.problems == []
    assert (case.outside / "secret.png").resolve() in loaded.dataset.paths
    assert loaded.n_scored == 5


# --- the file itself is unusable: refused with one line naming it ----------------------------------

REFUSED: dict[str, tuple[Callable[[Case], Path], str]] = {
    "json_malformed": (
        lambda c: c.raw(
            "ann.json", b'[\n {"file_name": "images/a_0.png", "text": "x"}\n {"file_name": "b"}\n]'
        ),
        "not valid JSON at line 3, column 2",
    ),
    "json_empty_file": (lambda c: c.raw("ann.json", b""), "file is empty"),
    "jsonl_empty_file": (lambda c: c.raw("ann.jsonl", b"\n\n"), "no entries found"),
    "csv_empty_file": (lambda c: c.raw("ann.csv", b""), "the file is empty"),
    "json_latin1": (
        lambda c: c.write("json", [{"file_name": "images/a_0.png", "text": "Röntgen"}], encoding="latin-1"),
        "is not UTF-8 text",
    ),
    "jsonl_latin1": (
        lambda c: c.write("jsonl", [{"file_name": "images/a_0.png", "text": "Röntgen"}], encoding="latin-1"),
        "is not UTF-8 text",
    ),
    "csv_cp1252": (
        lambda c: c.write("csv", [{"file_name": "images/a_0.png", "text": "“quoted”"}], encoding="cp1252"),
        "is not UTF-8 text",
    ),
    "csv_utf16_excel_unicode_text": (lambda c: c.write("csv", [], encoding="utf-16"), "is not UTF-8 text"),
    "json_top_level_number": (
        lambda c: c.raw("ann.json", b"42"),
        "expected a JSON list of entries or an object",
    ),
    "json_list_of_strings": (
        lambda c: c.raw("ann.json", b'["images/a_0.png"]'),
        "expected a list of objects",
    ),
    "json_nested_too_deep": (
        lambda c: c.raw("ann.json", b"[" * 100_000 + b"]" * 100_000),
        "nested too deeply",
    ),
    "json_number_of_4301_digits": (
        lambda c: c.raw("ann.json", b"[" + b"1" * 4301 + b"]"),
        "a number too long to read",
    ),
    "csv_no_image_column": (
        lambda c: c.raw("ann.csv", b"picture,text,label\nimages/a_0.png,x,a\n"),
        "no image file column; columns found: picture, text, label",
    ),
    "jsonl_no_caption_or_label": (
        lambda c: c.raw("ann.jsonl", b'{"file_name": "images/a_0.png", "notes": "x"}\n'),
        "no caption or label key",
    ),
    "json_every_path_outside": (
        lambda c: c.raw(
            "ann.json", json.dumps([{"file_name": "../../etc/passwd", "text": "x", "label": "a"}]).encode()
        ),
        "Paths outside the dataset folder are refused unless allowed",
    ),
}


@pytest.mark.parametrize(("make", "needle"), [pytest.param(*v, id=k) for k, v in REFUSED.items()])
def test_unusable_annotation_file_is_refused_naming_it(case: Case, harness: Harness, make, needle):
    path = make(case)

    message = harness.refused(path, watch=case.ds.parent)

    assert message.startswith(str(path))
    assert needle in message


# --- the other files a user hands the CLI: a --config and --class-texts ----------------------------

OTHER_FILES = {
    "latin1": ('{"epochs": 2, "output": "Röntgen"}'.encode("latin-1"), "not UTF-8"),
    "number_of_4301_digits": (b'{"epochs": ' + b"1" * 4301 + b"}", "not"),
    "nested_too_deep": (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not"),
    "malformed": (b'{"epochs": 2,}', "not valid JSON"),
}


@pytest.mark.parametrize("option", ["train --config", "zeroshot --class-texts"])
@pytest.mark.parametrize(("content", "needle"), [pytest.param(*v, id=k) for k, v in OTHER_FILES.items()])
def test_bad_config_or_class_texts_file_is_one_line_exit_2(
    case: Case, harness: Harness, option, content, needle
):
    bad = case.raw("settings.json", content)
    command, flag = option.split()
    data = case.write("jsonl", [])
    argv = ["train", "--data", data, flag, bad] if command == "train" else ["zeroshot", data, flag, bad]
    if command == "zeroshot":
        argv += ["--model", harness.model_dir, "--device", "cpu"]

    run = harness.cli(*argv)

    assert run.code == 2
    errors = [line for line in run.err.splitlines() if line.startswith("clipstudio: error:")]
    assert errors == run.err.splitlines()[-1:] and str(bad) in errors[0] and needle in errors[0]
