"""Training image size on the CPU: the built-in model's full fine-tune at each size, side by side.

    .venv/bin/python -m bench.bench_image_size [--datasets pneumoniamnist breastmnist bloodmnist]
        [--sizes 112 224] [--seeds 0 1] [--epochs 5]

Runs the real CLI for each dataset, seed and size (`clipstudio train DATA --model builtin --method
full --epochs 5 --seed S --img-size N --device cpu`, then `clipstudio eval RUN DATA --json`) and
records the test accuracy, balanced accuracy, macro AUC and training wall time. The sizes of one
dataset and seed run one after the other, so the time ratio is measured side by side. Writes
out/image_size.json and out/image_size.md (one row per run, then the means per dataset and size).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import DATASETS, machine, out_dir


def _cli(argv: list[str]) -> None:
    from clipstudio.cli.main import main

    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"clipstudio {shlex.join(argv)} exited {rc}")


def run_one(name: str, size: int, seed: int, epochs: int, runs: Path) -> dict:
    data = DATASETS / name / "folders"
    run = runs / f"{name}-{size}-seed{seed}"
    train = ["train", str(data), "--model", "builtin", "--method", "full", "--epochs", str(epochs),
             "--seed", str(seed), "--img-size", str(size), "--device", "cpu", "--output", str(run)]
    started = time.perf_counter()
    _cli(train)
    train_s = time.perf_counter() - started
    out = runs / f"{run.name}.json"
    _cli(["eval", str(run), str(data), "--json", str(out)])
    after = json.loads(out.read_text(encoding="utf-8"))["after"]  # the trained model, on the test split
    row = {"dataset": name, "size": size, "seed": seed, "train_s": round(train_s, 1),
           "accuracy": after["accuracy"], "balanced_accuracy": after["balanced_accuracy"],
           "auc": after["auc"]["macro"]["value"], "command": shlex.join(["clipstudio", *train])}
    print(json.dumps(row), flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Mean of each metric per dataset and size, and the time relative to the dataset's smallest size."""
    means = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == name]
        sizes = sorted({r["size"] for r in group})
        times = {s: statistics.mean(r["train_s"] for r in group if r["size"] == s) for s in sizes}
        for size in sizes:
            at = [r for r in group if r["size"] == size]
            means.append({
                "dataset": name, "size": size, "seeds": len(at),
                **{k: round(statistics.mean(r[k] for r in at), 3) for k in ("accuracy", "balanced_accuracy", "auc")},
                "train_s": round(times[size]), "time_vs_smallest": round(times[size] / times[sizes[0]], 2),
            })
    return means


def markdown(rows: list[dict], means: list[dict]) -> str:
    head = "| dataset | size | seed | train s | accuracy | balanced acc | AUC |\n|---|---|---|---|---|---|---|\n"
    body = "".join(f"| {r['dataset']} | {r['size']} | {r['seed']} | {r['train_s']} | {r['accuracy']:.3f} | "
                   f"{r['balanced_accuracy']:.3f} | {r['auc']:.3f} |\n" for r in rows)
    mean_head = ("\n| dataset | size | seeds | train s | time vs smallest | accuracy | balanced acc | AUC |\n"
                 "|---|---|---|---|---|---|---|---|\n")
    mean_body = "".join(f"| {m['dataset']} | {m['size']} | {m['seeds']} | {m['train_s']} | {m['time_vs_smallest']}x | "
                        f"{m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['auc']:.3f} |\n" for m in means)
    return f"Machine: {machine()}\n\n" + head + body + mean_head + mean_body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["pneumoniamnist", "breastmnist", "bloodmnist"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[112, 224])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--runs", default=None, help="keep the run folders here (default: a temp folder)")
    args = ap.parse_args(argv)

    rows: list[dict] = []
    folder = out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        runs.mkdir(parents=True, exist_ok=True)
        # Seed-major order: every dataset gets its first seed before any gets a second.
        for seed in args.seeds:
            for name in args.datasets:
                for size in args.sizes:
                    rows.append(run_one(name, size, seed, args.epochs, runs))
                    # Written after every run, so a long benchmark stopped early keeps what it measured.
                    (folder / "image_size.json").write_text(
                        json.dumps({"machine": machine(), "rows": rows, "means": summary(rows)}, indent=2) + "\n",
                        encoding="utf-8",
                    )
    (folder / "image_size.md").write_text(markdown(rows, summary(rows)), encoding="utf-8")
    print(markdown(rows, summary(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
