"""What the command line prints: error and warning lines, JSON output, progress and log events."""

from __future__ import annotations

import json

import pytest

from clipstudio.cli.console import (
    ProgressBars,
    print_error,
    report_problems,
    scored_payload,
    show_result,
    write_json,
)
from clipstudio.engine.data import Dataset, Problem
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.split_policy import EvaluationPart
from clipstudio.engine.events import MessageLogged, ProgressUpdated


def test_write_json_to_stdout_and_to_a_file(capsys, tmp_path):
    write_json("-", {"accuracy": 0.5, "class": "肺炎"})
    assert json.loads(capsys.readouterr().out) == {"accuracy": 0.5, "class": "肺炎"}

    target = tmp_path / "out.json"
    write_json(str(target), [1, 2])
    assert json.loads(target.read_text(encoding="utf-8")) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # written atomically, no temp file left


def test_write_json_to_a_folder_is_a_user_error(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        write_json(str(tmp_path), {})


def test_a_result_prints_as_a_table_unless_its_json_goes_to_stdout(capsys, tmp_path):
    show_result(None, {"accuracy": 0.5}, lambda: "accuracy 0.500")
    assert capsys.readouterr().out == "accuracy 0.500\n"

    target = tmp_path / "result.json"
    show_result(str(target), {"accuracy": 0.5}, lambda: "accuracy 0.500")
    assert capsys.readouterr().out == "accuracy 0.500\n"
    assert json.loads(target.read_text(encoding="utf-8")) == {"accuracy": 0.5}

    show_result("-", {"accuracy": 0.5}, lambda: "accuracy 0.500")
    assert json.loads(capsys.readouterr().out) == {"accuracy": 0.5}  # nothing else on stdout: it pipes


def test_a_scored_result_names_its_split_and_model(tmp_path):
    part = EvaluationPart(Dataset(root=tmp_path, format="class_folders", samples=[]), "test", "'test' split, 3 images")
    payload = scored_payload({"n": 3, "accuracy": 1.0}, part, "builtin")
    assert payload == {"n": 3, "accuracy": 1.0, "split": "test", "split_description": "'test' split, 3 images",
                       "model": "builtin"}


def test_errors_and_skipped_items_go_to_stderr(capsys, tmp_path):
    print_error("no such folder")
    problems = [Problem(tmp_path / f"{i}.png", "not an image") for i in range(7)]
    report_problems(problems, "skipped", shown=2)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "clipstudio: error: no such folder"
    assert lines[1] == "clipstudio: warning: skipped 7 item(s):"
    assert "0.png: not an image" in lines[2] and "and 5 more" in lines[4]


def test_progress_bars_close_when_done_and_log_messages_print(capsys):
    bars = ProgressBars(enabled=False)
    bars(ProgressUpdated("encode", 3, 10))
    bars(ProgressUpdated("encode", 10, 10))
    bars(MessageLogged("warning", "GPU not found, using the CPU"))
    bars.close()
    assert "clipstudio: warning: GPU not found, using the CPU" in capsys.readouterr().err
