"""Reading files a user hands us: every failure is one sentence naming the file and the reason."""

from __future__ import annotations

import pytest

from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.storage.text_files import read_json, read_text


def test_utf8_with_or_without_a_byte_order_mark(tmp_path):
    plain, bom = tmp_path / "plain.json", tmp_path / "bom.json"
    plain.write_text('{"class": "肺炎"}', encoding="utf-8")
    bom.write_text('{"class": "肺炎"}', encoding="utf-8-sig")
    assert read_json(plain, "config file") == read_json(bom, "config file") == {"class": "肺炎"}
    assert read_text(bom, "annotation file") == '{"class": "肺炎"}'


def _message(error, fn, path, what="sweep file"):
    with pytest.raises(error) as info:
        fn(path, what, error=error)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('[{"output": "Röntgen"}]'.encode("latin-1"), "is not UTF-8 text (invalid byte at position"),
        (b"[{\"lr\": 1e-5},\n {\"lr\" 2e-5}]", "not valid JSON at line 2, column"),
        (b"  \n", "the file is empty"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"9" * 5000, "a number too long to read"),
    ],
)
def test_unusable_json_is_one_line_naming_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "sweep.json"
    path.write_bytes(content)
    assert reason in _message(ConfigError, read_json, path)


def test_missing_file_and_folder_are_named(tmp_path):
    assert "sweep file not found" in _message(ConfigError, read_json, tmp_path / "nope.json")
    assert "is a folder" in _message(DataError, read_text, tmp_path)


def test_the_caller_chooses_the_error_class(tmp_path):
    path = tmp_path / "ann.json"
    path.write_bytes("é".encode("latin-1"))
    with pytest.raises(DataError):
        read_text(path, "annotation file")
