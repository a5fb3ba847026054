"""The README's main job: `clipstudio demo` on the bundled sample with the built-in model, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_offline_and_writes_a_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLIPSTUDIO_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "clipstudio", "demo", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "demo_report.json").read_text(encoding="utf-8"))
    assert report["health"]["n_images"] == 48
    assert report["health"]["classes"] == {"normal": 24, "pneumonia": 24}
    assert len(report["prompt_sets"]) == 3
    assert report["zero_shot"]["n"] == 48
    assert len(report["search"]["hits"]) == 5
    probe = report["linear_probe"]
    assert probe["status"] == "completed"
    assert probe["val_balanced_acc_after"] >= probe["val_balanced_acc_before"]
    assert "Prompt sets compared" in proc.stdout
