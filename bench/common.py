"""Shared bits of the benchmark scripts: machine description and JSON + markdown output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores {cpu}, {gpu}, torch {torch.__version__}"


def write_results(name: str, rows: list[dict]) -> tuple[Path, Path]:
    """Write ``out/<name>.json`` and ``out/<name>.md`` (row, baseline, ours, ratio, target, machine)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    json_path = OUT_DIR / f"{name}.json"
    md_path = OUT_DIR / f"{name}.md"
    json_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    cols = ["row", "baseline", "ours", "ratio", "target", "machine"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path
