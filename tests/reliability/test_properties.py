"""Property-based tests (hypothesis): annotation readers, the prompt formatter, and config JSON round trips."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import types
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipstudio.engine.config import StudioConfig, TrainConfig, from_dict, load_config, save_config, to_dict
from clipstudio.engine.data import load_dataset
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.prompts import PLACEHOLDER, PromptSet, format_prompt

# Each example writes one small file; a few hundred examples run in a few seconds.
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Image files are never opened while an index is read, so empty files stand in for them. Their
# names carry what trips up CSV and path handling: spaces, commas, quotes, unicode.
IMAGE_NAMES = ["plain.png", "with space.png", 'comma, "quoted".png', "Röntgen 胸部.png", "semi;colon.jpg",
               "tab\there.png", "x.dcm", "Upper.PNG"]  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("property_images")
    for name in IMAGE_NAMES:
        (folder / name).touch()
    return folder


# Captions: any text a report can hold (unicode, newlines, quotes, commas, tabs, braces), non-blank.
captions = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list("\n\r\t,;\"'{}\\|")),
    min_size=1,
    max_size=80,
).filter(lambda s: s.strip())
extra_values = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(st.integers(), max_size=3)
)
extra_keys = st.text(
    st.characters(whitelist_categories=("L", "N")) | st.just("_"), min_size=1, max_size=8
).filter(
    lambda k: (
        k.strip().lower()
        not in {
            "img",
            "image",
            "file_name",
            "filepath",
            "file",
            "path",
            "caption",
            "text",
            "title",
            "captions",
            "class_name",
            "label",
            "class",
            "group",
            "patient_id",
            "patient",
            "case_id",
            "split",
        }
    )  # fmt: skip
)


@st.composite
def annotation_rows(draw):
    """Rows naming distinct images, each with one caption, extra keys, and the keys in any order."""
    names = draw(st.lists(st.sampled_from(IMAGE_NAMES), min_size=1, max_size=len(IMAGE_NAMES), unique=True))
    extras = draw(st.dictionaries(extra_keys, extra_values, max_size=3))
    order = draw(st.permutations(["file_name", "text", *extras]))
    rows = []
    for name in names:
        values = {"file_name": name, "text": draw(captions), **extras}
        rows.append({key: values[key] for key in order})
    return rows


def _write(folder: Path, fmt: str, rows: list[dict]) -> Path:
    path = folder / f"ann.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(list(rows[0]))
        writer.writerows([["" if v is None else str(v) for v in r.values()] for r in rows])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@FAST
@given(rows=annotation_rows())
def test_reader_round_trip_gives_back_every_caption(images, fmt, rows):
    ds = load_dataset(_write(images, fmt, rows))

    assert ds.problems == []
    loaded = {s.path.name: s.captions for s in ds.samples}
    assert loaded == {r["file_name"]: [r["text"].strip()] for r in rows}


def _valid_file(fmt: str) -> bytes:
    rows = [{"file_name": "plain.png", "text": "a, \"quoted\"\ncaption", "label": "a"},
            {"file_name": "Röntgen 胸部.png", "text": "zweite", "label": 2}]  # fmt: skip
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False).encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    return 'file_name,text,label\nplain.png,"a, ""quoted""\ncaption",a\nRöntgen 胸部.png,zweite,2\n'.encode()


@st.composite
def mangled(draw, fmt: str) -> bytes:
    """A valid annotation file with bytes flipped, inserted, deleted or the end cut off."""
    data = bytearray(_valid_file(fmt))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@FAST
@given(data=st.data())
def test_garbage_either_loads_or_raises_a_data_error_naming_the_file(images, fmt, data):
    content = data.draw(st.binary(max_size=200) | mangled(fmt), label="content")
    path = images / f"garbage.{fmt}"
    path.write_bytes(content)

    try:
        ds = load_dataset(path)
    except DataError as exc:
        assert str(path) in str(exc)
        assert "\n" not in str(exc)
    else:
        assert all(p.path.startswith(str(path)) for p in ds.problems)
        assert all(s.path.parent == images for s in ds.samples)


# --- the prompt template formatter -------------------------------------------------------------

no_placeholder = st.text(max_size=20).filter(lambda s: PLACEHOLDER not in s)
class_names = st.text(max_size=20) | st.sampled_from(
    ["{", "}", "{}", "{0}", "{class_name}", "{{x}}", "%s", "肺炎"]
)


@FAST
@given(parts=st.lists(no_placeholder, min_size=2, max_size=5), name=class_names)
def test_format_prompt_puts_the_name_at_every_placeholder_and_nothing_else(parts, name):
    template = PLACEHOLDER.join(parts)

    assert format_prompt(template, name) == name.join(parts)


@FAST
@given(template=no_placeholder, name=class_names)
def test_template_without_placeholder_is_a_config_error(template, name):
    with pytest.raises(ConfigError, match="no {class_name} placeholder"):
        format_prompt(template, name)
    with pytest.raises(ConfigError):
        PromptSet(name="x", templates=[template])


@FAST
@given(parts=st.lists(no_placeholder, min_size=2, max_size=3), name=st.text(min_size=1, max_size=20))
def test_prompt_set_fills_every_template_for_any_class_name(parts, name):
    prompts = PromptSet(templates=[PLACEHOLDER.join(parts), "{class_name}"])
    words = " ".join(name.replace("_", " ").split())

    assert prompts.texts_for(name) == [words.join(parts), words]


# --- config JSON round trip --------------------------------------------------------------------


def _strategy(tp) -> st.SearchStrategy:
    """Values of a config field's type, built from the type hints (so new fields are covered too)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_strategy(a) for a in args if a is not type(None)]) | st.none()
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(tp)}
        return st.builds(tp, **fields)
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)
    return {
        str: st.text(max_size=12),
        int: st.integers(-(10**6), 10**6),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
    }[tp]


CONFIG_CLASSES = [TrainConfig, StudioConfig]


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_config_survives_a_json_round_trip(cls, data):
    cfg = data.draw(_strategy(cls))

    assert from_dict(cls, json.loads(json.dumps(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_config_survives_save_and_load(tmp_path_factory, cls, data):
    cfg = data.draw(_strategy(cls))
    path = tmp_path_factory.mktemp("cfg") / "config.json"

    save_config(cfg, path)

    assert load_config(cls, path) == cfg


def _sections(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])]


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_unknown_config_key_is_rejected_by_name(cls, data):
    document = to_dict(cls())
    section = data.draw(st.sampled_from([None, *_sections(cls)]), label="section")
    target = document if section is None else document[section]
    key = data.draw(
        st.text(min_size=1, max_size=15).filter(lambda k: k not in target and k != "schema_version")
    )
    target[key] = data.draw(extra_values)

    with pytest.raises(ConfigError) as info:
        from_dict(cls, json.loads(json.dumps(document)))
    assert repr(key) in str(info.value)
