"""The benchmark suite still runs end to end (tiny sizes) and reports every row. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = {"row", "baseline", "ours", "ratio", "target", "machine"}
# Every row of issue 6's table plus issue 3's two benchmarks, by the start of the row text.
EXPECTED_ROWS = [
    "1 ",
    "issue 3: Trainer vs seed loop",
    "issue 3: linear_probe",
    "2 ",
    "3 ",
    "4 ",
    "5 ",
    "6 ",
    "7 ",
    "8 ",
]


@pytest.mark.slow  # every benchmark, the built-in model included (about a minute)
def test_quick_suite_writes_every_row(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    suite = json.loads((out / "suite.json").read_text(encoding="utf-8"))
    assert suite["quick"] is True and suite["failed"] == []
    rows = suite["rows"]
    for row in rows:
        assert COLUMNS <= set(row), row
    names = [row["row"] for row in rows]
    for prefix in EXPECTED_ROWS:
        assert any(name.startswith(prefix) for name in names), f"no row starting {prefix!r} in {names}"
    # Rows re-used from other scripts' outputs (row 6, endurance, index scale) carry a "source".
    measured = [r for r in rows if "source" not in r and not r["row"].startswith("6 ")]
    assert all(r["ours"] and r["target"] for r in measured)

    table = (out / "suite.md").read_text(encoding="utf-8")
    assert table.startswith("| row | baseline | ours | ratio | target | machine |")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(rows) + 1
    assert "| row |" in proc.stdout  # the table is printed too
