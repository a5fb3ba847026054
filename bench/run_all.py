"""The whole benchmark suite in one command: every row of docs/PERFORMANCE.md, side by side, in one run.

    .venv/bin/python -m bench.run_all            # the full suite (sizes in docs/PERFORMANCE.md), < 10 min here
    .venv/bin/python -m bench.run_all --quick    # tiny models and sizes, ~1-2 min: CI's smoke run

Each script runs in its own process (a fresh heap per row; a failing script fails its rows, not the
suite), with a temporary CLIPSTUDIO_HOME / CLIPSTUDIO_CACHE_DIR so nothing touches the user's caches.
Rows written by other scripts and not re-run here (the GUI stall of ``bench_gui_stall.py``, long
endurance and index-scale runs) are picked up from their JSON in the output folder when present.
Writes ``suite.json`` (rows + run facts) and ``suite.md`` to ``bench/out/`` (or ``--out``) and prints
the table. Exit code 1 when a script failed; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import MODELS_ENV, OUT_ENV, markdown_table, out_dir

ROOT = Path(__file__).resolve().parents[1]

# (module, output name, the row numbers it produces, extra arguments of the full run): in this order.
SCRIPTS = [
    ("bench.bench_training", "training", "1, issue 3", []),
    ("bench.bench_embedding", "embedding", "2", []),
    ("bench.bench_rescoring", "rescoring", "3", []),
    ("bench.bench_retrieval", "retrieval", "4", []),
    ("bench.bench_cold_start", "cold_start", "5", []),
    ("bench.bench_memory", "memory", "7", []),
    # 1k/10k/50k (the script's default) alone takes ~10 min here; the suite's budget allows this much.
    ("bench.bench_scaling", "scaling", "8", ["--sizes", "1000", "4000", "16000"]),
]
# Outputs of scripts this suite does not run (too long, or owned elsewhere), reused when present.
REUSED = [
    ("gui_stall", "6 longest GUI-thread stall during training"),
    ("endurance", None),
    ("index_scale", None),
]


def _load_rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, list) else data.get("rows", [])


def _reused_rows(name: str, default_row: str | None, search: list[Path]) -> list[dict]:
    for folder in search:
        path = folder / f"{name}.json"
        if path.is_file():
            stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
            rows = _load_rows(path)
            for row in rows:
                text = str(row.get("row", ""))
                if default_row and not text.startswith("6"):
                    row["row"] = f"6 {text}"
                row["source"] = f"bench/out/{name}.json of {stamp} (not re-run by the suite)"
            return rows
    if default_row is None:
        return []
    return [
        {
            "row": default_row,
            "baseline": "",
            "ours": f"not measured: bench/out/{name}.json is missing (run .venv/bin/python -m bench.bench_{name})",
            "ratio": "",
            "target": "< 50 ms",
            "machine": "",
        }
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="tiny models and sizes (~1-2 minutes): the CI smoke run"
    )
    ap.add_argument("--out", default=None, help="output folder (default bench/out)")
    ap.add_argument(
        "--only", nargs="+", default=None, help="run only these output names, e.g. training retrieval"
    )
    args = ap.parse_args(argv)

    out = Path(args.out).resolve() if args.out else out_dir()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows: list[dict] = []
    scripts: dict[str, dict] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="clipstudio-bench-") as tmp:
        env = dict(
            os.environ,
            **{OUT_ENV: str(out), MODELS_ENV: str(Path(tmp) / "models")},
            CLIPSTUDIO_HOME=str(Path(tmp) / "home"),
            CLIPSTUDIO_CACHE_DIR=str(Path(tmp) / "cache"),
            QT_QPA_PLATFORM="offscreen",
            PYTHONUNBUFFERED="1",
        )
        for module, name, numbers, full_args in SCRIPTS:
            if args.only and name not in args.only:
                continue
            print(f"== {module} (row {numbers}){' --quick' if args.quick else ''}", flush=True)
            (out / f"{name}.json").unlink(missing_ok=True)
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", module, *(["--quick"] if args.quick else full_args)]
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            scripts[name] = {"module": module, "seconds": round(seconds, 1), "returncode": proc.returncode}
            result = out / f"{name}.json"
            if proc.returncode == 0 and result.is_file():
                got = _load_rows(result)
                rows += got
                print(f"   {len(got)} row(s) in {seconds:.0f} s", flush=True)
            else:
                failed.append(name)
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
                print(
                    f"   FAILED (exit {proc.returncode}) after {seconds:.0f} s:\n   " + "\n   ".join(tail),
                    flush=True,
                )
                rows.append(
                    {
                        "row": f"{numbers}: {module} failed",
                        "baseline": "",
                        "ours": (tail or [""])[-1],
                        "ratio": "",
                        "target": "",
                        "machine": "",
                    }
                )
    search = [out] if out == out_dir() else [out, out_dir()]
    for name, default_row in REUSED:
        rows += _reused_rows(name, default_row, search)
    rows.sort(key=_row_order)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    suite = {
        "quick": args.quick,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "load_average_before_after": [load_before, load_after],
        "scripts": scripts,
        "failed": failed,
        "rows": rows,
    }
    (out / "suite.json").write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(rows)
    notes = (
        f"\nSuite {'--quick ' if args.quick else ''}finished in {elapsed:.0f} s; "
        f"1-minute load average {_load(load_before)} before, {_load(load_after)} after.\n"
    )
    (out / "suite.md").write_text(table + notes, encoding="utf-8")
    print()
    print(table + notes)
    return 1 if failed else 0


def _load(value) -> str:
    return "n/a" if not value else f"{value[0]:.1f}"


def _row_order(row: dict) -> tuple:
    text = str(row.get("row", ""))
    head = text.split(" ", 1)[0].rstrip(":")
    digits = "".join(ch for ch in head if ch.isdigit())
    if text.startswith("issue 3"):
        return (1.5,)
    return (int(digits) if digits else 99,)  # a stable sort: each script's own order within a row number


if __name__ == "__main__":
    sys.exit(main())
