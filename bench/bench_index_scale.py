"""Index scale: a 100k-item image-caption index (JSONL + empty image files) loads in under 5 s and 500 MB.

Images are read lazily, so the files can be empty: loading the index must not open one of them. Each
load runs in a fresh process (peak RSS: VmHWM on Linux, else ``getrusage``; every file opened is seen by an audit hook).

- Time: ``load_dataset`` on the index, against a bare ``json.loads`` of each line (the least any
  reader must do); best of ``--repeats`` fresh processes.
- Memory: the process's peak RSS after the load, against its RSS with the reader imported.

    .venv/bin/python -m bench.bench_index_scale [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 100_000
TARGET_S = 5.0
TARGET_MB = 500.0


def make_index(folder: Path, n: int = N_ITEMS) -> Path:
    """``folder/metadata.jsonl`` naming ``n`` empty files ``folder/imgs/<i>.png``, with captions and 10 labels."""
    images = folder / "imgs"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        name = f"{i:06d}.png"
        os.close(os.open(images / name, os.O_CREAT | os.O_WRONLY, 0o644))
        lines.append(
            json.dumps(
                {"file_name": f"imgs/{name}", "text": f"a chest x-ray, case {i}", "label": f"c{i % 10}"}
            )
        )
    index = folder / "metadata.jsonl"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index


def _peak_mb() -> float:
    """This process's peak RSS in MB.

    Linux: VmHWM, the peak of this process image alone. ``ru_maxrss`` survives exec(), so a child of
    a big process (pytest after other tests) would report its parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _child(mode: str, index: Path) -> dict:
    images = str(index.parent / "imgs")
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if (
            event == "open"
            and isinstance(args[0], str | os.PathLike)
            and os.fspath(args[0]).startswith(images)
        ):
            opened.append(os.fspath(args[0]))

    sys.addaudithook(audit)
    from clipstudio.engine.data import load_dataset

    before = _peak_mb()
    started = time.perf_counter()
    if mode == "baseline":
        n = sum(1 for line in index.read_text(encoding="utf-8").splitlines() if json.loads(line))
        n_problems = 0
    else:
        dataset = load_dataset(index)
        n, n_problems = len(dataset), len(dataset.problems)
    seconds = time.perf_counter() - started
    return {"n": n, "n_problems": n_problems, "seconds": seconds, "rss_imported_mb": before,
            "peak_rss_mb": _peak_mb(), "images_opened": len(opened)}  # fmt: skip


def load_in_subprocess(index: Path, mode: str = "load") -> dict:
    """Load ``index`` in a fresh interpreter; returns n, n_problems, seconds, peak_rss_mb, images_opened..."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_index_scale", "--child", mode, str(index)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    return json.loads(out.split("RESULT ")[-1])


def run(n: int = N_ITEMS, repeats: int = 3) -> list[dict]:
    from bench.common import machine

    with tempfile.TemporaryDirectory() as tmp:
        index = make_index(Path(tmp), n)
        ours = [load_in_subprocess(index) for _ in range(repeats)]
        baseline = [load_in_subprocess(index, "baseline") for _ in range(repeats)]
    best = min(ours, key=lambda r: r["seconds"])
    floor = min(r["seconds"] for r in baseline)
    peak = max(r["peak_rss_mb"] for r in ours)
    assert best["n"] == n and best["images_opened"] == 0, best
    where = machine()
    return [
        {
            "row": f"index scale: load a {n:,}-item JSONL index (lazy images), best of {repeats}",
            "baseline": f"json.loads of each line {floor:.2f} s",
            "ours": f"load_dataset {best['seconds']:.2f} s, {best['images_opened']} images opened",
            "ratio": f"{best['seconds'] / floor:.1f}x",
            "target": f"< {TARGET_S:.0f} s",
            "machine": where,
            "value": best["seconds"],
        },
        {
            "row": f"index scale: peak RSS loading a {n:,}-item index",
            "baseline": f"reader imported {best['rss_imported_mb']:.0f} MB",
            "ours": f"peak {peak:.0f} MB",
            "ratio": f"+{peak - best['rss_imported_mb']:.0f} MB",
            "target": f"< {TARGET_MB:.0f} MB",
            "machine": where,
            "value": peak,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print("RESULT " + json.dumps(_child(argv[1], Path(argv[2]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=N_ITEMS, help="index size (default 100,000)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement (default 3)")
    args = ap.parse_args(argv)
    from bench.common import write_results

    _, md = write_results("index_scale", run(args.n, args.repeats))
    print(md.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
