"""`clipstudio inspect DATA`: the health report, as text and as JSON."""

from __future__ import annotations

import json


def test_inspect_json_has_documented_keys(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"train": {"normal": 4, "pneumonia": 2},
                                                   "test": {"normal": 2, "pneumonia": 2}})
    (data / "train" / "normal" / "broken.png").write_bytes(b"not a png")
    out_json = tmp_path / "report.json"
    code, out, _ = cli("inspect", str(data), "--json", str(out_json))
    assert code == 0
    report = json.loads(out_json.read_text(encoding="utf-8"))
    for key in ("n_images", "n_unreadable", "classes", "splits", "duplicates", "problems"):
        assert key in report
    assert report["classes"] == {"normal": 7, "pneumonia": 4}
    assert report["n_unreadable"] == 1
    assert any("broken.png" in p["path"] for p in report["problems"])
    assert "normal" in out and "pneumonia" in out


def test_json_to_stdout(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"a": 2, "b": 3})
    code, out, _ = cli("inspect", str(data), "--json", "-")
    assert code == 0
    assert json.loads(out)["classes"] == {"a": 2, "b": 3}
