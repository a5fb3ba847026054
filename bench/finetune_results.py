"""Fine-tuning before -> after on the real datasets, with the built-in model on this machine.

    .venv/bin/python -m bench.finetune_results [--quick]

Runs the real CLI (`clipstudio train`, then `clipstudio eval RUN DATA --json`) for each
dataset and method, plus the multi-positive vs plain CLIP loss comparison, and writes
docs/FINETUNING.md with every command that produced a number. Held-out figures are on each set's
test split, which training never sees (validation is carved from train).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"

FULL = ["--method", "full", "--epochs", "4", "--img-size", "112", "--lr", "1e-4", "--batch-size", "32"]
PROBE = ["--method", "linear_probe", "--epochs", "20"]


def _cli(argv: list[str]) -> None:
    from clipstudio.cli.main import main

    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"clipstudio {shlex.join(argv)} exited {rc}")


def run_case(name: str, data: Path, train_args: list[str], runs: Path, tag: str) -> dict:
    run = runs / f"{name}-{tag}"
    train = ["train", str(data), "--output", str(run), *train_args]
    t0 = time.perf_counter()
    _cli(train)
    train_s = time.perf_counter() - t0
    out = runs / f"{name}-{tag}.json"
    evaluate = ["eval", str(run), str(data), "--json", str(out)]
    _cli(evaluate)
    result = json.loads(out.read_text(encoding="utf-8"))
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    return {"name": name, "tag": tag, "train_s": train_s, "result": result, "history": history,
            "commands": [shlex.join(["clipstudio", *train]).replace(str(runs), "RUNS"),
                         shlex.join(["clipstudio", *evaluate]).replace(str(runs), "RUNS")]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "FINETUNING.md"))
    ap.add_argument("--runs", default=None, help="keep the run folders here (default: a temp folder)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        runs.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in ("pneumoniamnist", "bloodmnist", "organamnist"):
            data = DATASETS / name / "folders"
            rows.append(run_case(name, data, PROBE, runs, "linear_probe"))
            rows.append(run_case(name, data, FULL, runs, "full"))
        medpix = run_case("medpix2_caption", DATASETS / "medpix2_caption" / "pairs", FULL, runs, "full")
        loss_rows = [run_case("bloodmnist", DATASETS / "bloodmnist" / "folders", [*FULL, "--loss", loss], runs,
                              f"full-{loss}") for loss in ("multi_positive", "clip")]

    lines = [
        "# Fine-tuning results",
        "",
        f"Built-in model, this machine ({machine()}). Regenerate with",
        "`.venv/bin/python -m bench.finetune_results` (about 20-30 minutes on 2 CPU cores).",
        "Before = the built-in model zero-shot with the default prompt ensemble; after = the run's",
        "best checkpoint (by validation balanced accuracy; validation is 20% carved from `train`).",
        "Classification figures are on the held-out `test` split, which training never sees. Times were",
        "taken while other jobs shared the 2 cores. Full fine-tuning keeps BatchNorm statistics frozen",
        "and trains at 112 px (the MedMNIST images are 28 px); the saved model then works at 112 px.",
        "",
        "## Classification (balanced accuracy on `folders/test`)",
        "",
        "| dataset | method | before | after | change | accuracy before -> after | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["result"]["before"], r["result"]["after"]
        lines.append(
            f"| {r['name']} | {r['tag']} | {b['balanced_accuracy']:.3f} | {a['balanced_accuracy']:.3f} "
            f"| {a['balanced_accuracy'] - b['balanced_accuracy']:+.3f} | {b['accuracy']:.3f} -> {a['accuracy']:.3f} "
            f"| {r['train_s']:.0f} s |"
        )
    b, a = medpix["result"]["before"], medpix["result"]["after"]
    lines += [
        "",
        "## Retrieval (MedPix 2.0 `pairs/val`, 253 image-caption pairs)",
        "",
        "| direction | R@1 before -> after | R@5 before -> after | R@10 before -> after |",
        "|---|---|---|---|",
    ]
    for direction in ("image_to_text", "text_to_image"):
        cells = [f"{b[direction][k]:.3f} -> {a[direction][k]:.3f}" for k in ("R@1", "R@5", "R@10")]
        lines.append(f"| {direction.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines += ["", f"Trained in {medpix['train_s']:.0f} s (full, 4 epochs at 112 px on 720 train pairs; "
              "val carved from train)."]
    lines += [
        "",
        "## Loss: multi-positive vs plain CLIP (bloodmnist, full, same settings)",
        "",
        "With class-folder data every batch holds several images of each class. The plain CLIP loss",
        "treats them as negatives of each other; the multi-positive loss treats them as positives.",
        "",
        "| loss | best val balanced acc | test balanced accuracy | test accuracy |",
        "|---|---|---|---|",
    ]
    for r in loss_rows:
        a = r["result"]["after"]
        best_val = max(v for v in r["history"].get("val_balanced_acc", [0]) if v is not None)
        lines.append(f"| {r['tag'].split('-', 1)[1]} | {best_val:.3f} | {a['balanced_accuracy']:.3f} "
                     f"| {a['accuracy']:.3f} |")
    lines += ["", "## Commands", ""]
    for r in [*rows, medpix, *loss_rows]:
        cmds = [c.replace(str(DATASETS), "../shared/datasets") for c in r["commands"]]
        lines += [f"- {r['name']} {r['tag']}:", "  ```", *[f"  {c}" for c in cmds], "  ```"]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
