"""`clipstudio demo`: the headless end-to-end run on the bundled sample (and what a bare `clipstudio` runs
where there is no screen)."""

from __future__ import annotations

import json

import pytest

from clipstudio.cli import main as cli_main


def test_bare_clipstudio_without_a_display_runs_the_demo(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(cli_main.sys, "argv", ["clipstudio"])
    monkeypatch.setattr(cli_main, "gui_unavailable_reason", lambda: "No display was found.")
    monkeypatch.setattr(cli_main.demo, "run_demo", lambda **kwargs: ran.append(kwargs) or True)
    assert cli_main.main() == 0
    assert ran == [{"model_spec": "builtin", "device": "auto", "out": None}]
    assert "Running the headless demo instead" in capsys.readouterr().out


def test_a_failed_demo_self_check_exits_1(monkeypatch, cli):
    monkeypatch.setattr(cli_main.demo, "run_demo", lambda **kwargs: False)
    code, _, _ = cli("demo", "--device", "cpu")
    assert code == 1


@pytest.mark.slow
def test_demo_writes_its_report(cli, tmp_path):
    code, out, err = cli("demo", "--device", "cpu", "--out", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "demo_report.json").read_text(encoding="utf-8"))
    assert report["linear_probe"]["status"] == "completed" and len(report["search"]["hits"]) == 5
    assert "Prompt sets compared" in out
