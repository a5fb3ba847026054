"""Regenerate docs/FIGURES.md: the built-in model's zero-shot and retrieval figures on ../shared/datasets.

    .venv/bin/python -m bench.make_figures [--model builtin]

Runs the real CLI (`clipstudio zeroshot` / `clipstudio retrieve`) on each dataset and tabulates its JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import machine

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
CLASSIFICATION = ["pneumoniamnist", "breastmnist", "retinamnist", "bloodmnist", "organamnist"]


def run_cli(args: list[str], out: Path) -> dict:
    from clipstudio.cli.main import main

    rc = main([*args, "--json", str(out)])
    if rc != 0:
        raise SystemExit(f"clipstudio {' '.join(args)} exited {rc}")
    return json.loads(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--out", default=str(ROOT / "docs" / "FIGURES.md"))
    args = ap.parse_args(argv)

    lines = [
        "# Figures: the built-in model out of the box",
        "",
        f"Model `{args.model}`, default prompt ensemble, no fine-tuning. Machine: {machine()}.",
        "Regenerate with `.venv/bin/python -m bench.make_figures`.",
        "",
        "## Zero-shot classification (`clipstudio zeroshot <set>/folders/test --model builtin`)",
        "",
        "| dataset | images | classes | accuracy (95% CI) | balanced accuracy (95% CI) | top-5 | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLASSIFICATION:
            data = DATASETS / name / "folders" / "test"
            d = run_cli(["zeroshot", str(data), "--model", args.model], Path(tmp) / f"{name}.json")
            ci = d["ci95"]
            top5 = f"{d['top5_accuracy']:.3f}" if d.get("top5_accuracy") is not None else "-"
            lines.append(
                f"| {name} | {d['n']} | {len(d['classes'])} | {d['accuracy']:.3f} "
                f"({ci['accuracy'][0]:.3f}-{ci['accuracy'][1]:.3f}) | {d['balanced_accuracy']:.3f} "
                f"({ci['balanced_accuracy'][0]:.3f}-{ci['balanced_accuracy'][1]:.3f}) | {top5} "
                f"| {1 / len(d['classes']):.3f} |"
            )
        lines += [
            "",
            "## Retrieval (`clipstudio retrieve medpix2_caption/pairs/val --model builtin`)",
            "",
            "| dataset | images | captions | direction | R@1 | R@5 | R@10 | mean rank | median rank |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        data = DATASETS / "medpix2_caption" / "pairs" / "val"
        d = run_cli(["retrieve", str(data), "--model", args.model], Path(tmp) / "medpix.json")
        for direction in ("image_to_text", "text_to_image"):
            r = d[direction]
            lines.append(
                f"| medpix2_caption val | {d['n']} | {d.get('n_texts', d['n'])} | {direction.replace('_', ' ')} "
                f"| {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | {d['mean_rank'][direction]:.1f} "
                f"| {d['median_rank'][direction]:.1f} |"
            )
    lines += [
        "",
        "Chance for retrieval R@K is K / number of images. The built-in model is a general-purpose",
        "photo model (ImageNet image tower, sentence-embedding text tower): on 28-px medical images it",
        "starts near chance, which is the point of fine-tuning. MedPix 2.0 has no clear licence; it is",
        "used here for measurement only and is not shipped.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
