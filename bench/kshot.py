"""Few-shot curves: test balanced accuracy against K training images per class, several seeds.

    .venv/bin/python -m bench.kshot [--datasets bloodmnist pneumoniamnist] [--shots 1 2 4 8 16]
        [--seeds 0 1 2] [--methods probe probe_text probe_none tip_adapter_f] [--merge FILE]

Each point runs the real CLI as a user would: `clipstudio train DATA --model builtin --method M
--shots K --split-seed S` (K training images per class drawn with split seed S; the validation part
is the one the app carves with that seed), then `clipstudio eval RUN DATA --json` on the test
split. Zero-shot (no training images) is drawn as a flat line. Writes out/kshot.json, out/kshot.md
(mean ± std over the seeds) and out/kshot.png (drawn with PIL: no plotting library needed).
``--merge FILE`` starts from an earlier kshot.json: its rows for the (dataset, method, K) points run
now are replaced, the others kept (re-running one dataset, or adding a method or a K, keeps the rest).
``--combine FILE...`` runs nothing and writes the outputs from several kshot.json files, e.g. seeds run
in separate processes, each with its own CLIPSTUDIO_BENCH_OUT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bench.adaptation import _cli
from bench.common import DATASETS, machine, out_dir

METHODS = {  # name -> (train arguments, label)
    "probe": (["--method", "linear_probe"], "linear probe (automatic prior)"),
    "probe_text": (["--method", "linear_probe", "--probe-prior", "text"], "linear probe (prompt prior)"),
    "probe_none": (["--method", "linear_probe", "--probe-prior", "none"], "linear probe (no prior)"),
    "tip_adapter": (["--method", "tip_adapter"], "Tip-Adapter"),
    "tip_adapter_f": (["--method", "tip_adapter_f"], "Tip-Adapter-F"),
    "clip_lora": (["--preset", "clip-lora"], "CLIP-LoRA (preset)"),
    # The built-in model's image trunk is frozen under the preset (no attention to adapt); without
    # augmentation its features are computed once per image (training/trunk_cache.py): ~3x faster.
    "clip_lora_none": (["--preset", "clip-lora", "--augmentation", "none"], "CLIP-LoRA (preset, no augmentation)"),
    "full": (["--method", "full"], "full fine-tuning (the model's rate)"),
    "auto": (["--method", "auto"], "Auto"),
}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def point(name: str, method: str, shots: int, seed: int, runs: Path) -> dict:
    data = DATASETS / name / "folders"
    run = runs / f"{name}-{method}-k{shots}-s{seed}"
    _cli(["train", str(data), "--model", "builtin", *METHODS[method][0], "--shots", str(shots),
          "--split-seed", str(seed), "--output", str(run)])
    out = runs / f"{run.name}.json"
    _cli(["eval", str(run), str(data), "--json", str(out)])
    after = json.loads(out.read_text(encoding="utf-8"))["after"]
    return {"dataset": name, "method": method, "shots": shots, "seed": seed,
            "balanced_accuracy": after["balanced_accuracy"], "accuracy": after["accuracy"],
            "auc": after["auc"]["macro"]["value"]}


def zero_shot(name: str, runs: Path) -> float:
    out = runs / f"{name}-zero_shot.json"
    _cli(["zeroshot", str(DATASETS / name / "folders"), "--model", "builtin", "--json", str(out)])
    return json.loads(out.read_text(encoding="utf-8"))["balanced_accuracy"]


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["dataset"], r["method"], r["shots"]) for r in rows):
        values = [r["balanced_accuracy"] for r in rows if (r["dataset"], r["method"], r["shots"]) == key]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append({"dataset": key[0], "method": key[1], "shots": key[2], "seeds": len(values),
                    "mean": statistics.mean(values), "std": std})
    return out


def merged(earlier: dict, rows: list[dict], zero: dict[str, float]) -> tuple[list[dict], dict[str, float]]:
    """``earlier``'s rows and zero-shot figures, with those of the (dataset, method, K) points in ``rows`` replaced."""
    fresh = {(r["dataset"], r["method"], r["shots"]) for r in rows}
    kept = [r for r in earlier.get("rows", []) if (r["dataset"], r["method"], r["shots"]) not in fresh]
    return kept + rows, {**earlier.get("zero_shot", {}), **zero}


def combined(parts: list[dict]) -> tuple[list[dict], dict[str, float]]:
    """The rows and zero-shot figures of several kshot.json files: one row per (dataset, method, K, seed),
    a later file's row replacing an earlier one's (seeds run in separate processes come together here)."""
    rows: dict[tuple, dict] = {}
    zero: dict[str, float] = {}
    for part in parts:
        for r in part.get("rows", []):
            rows[(r["dataset"], r["method"], r["shots"], r["seed"])] = r
        zero.update(part.get("zero_shot", {}))
    return list(rows.values()), zero


def _cell(mean: dict) -> str:
    """mean ± std over the seeds; one seed has no spread to show."""
    if mean["seeds"] == 1:
        return f"{mean['mean']:.3f} (1 seed)"
    return f"{mean['mean']:.3f} ± {mean['std']:.3f}"


def markdown(means: list[dict], zero: dict[str, float]) -> str:
    shots = sorted({m["shots"] for m in means})
    lines = [f"Machine: {machine()}\n", "Test balanced accuracy, mean ± std over the seeds.\n"]
    for name in dict.fromkeys(m["dataset"] for m in means):
        lines.append(f"\n**{name}** (zero-shot: {zero[name]:.3f})\n")
        lines.append("| method | " + " | ".join(f"K={k}" for k in shots) + " |")
        lines.append("|---|" + "---|" * len(shots))
        for method in dict.fromkeys(m["method"] for m in means if m["dataset"] == name):
            cells = {m["shots"]: m for m in means if m["dataset"] == name and m["method"] == method}
            lines.append(f"| {METHODS[method][1]} | " + " | ".join(
                _cell(cells[k]) if k in cells else "" for k in shots) + " |")
    return "\n".join(lines) + "\n"


def plot(means: list[dict], zero: dict[str, float], path: Path) -> None:
    """One panel per dataset: balanced accuracy against K (log scale), mean with ± std bars."""
    names = list(dict.fromkeys(m["dataset"] for m in means))
    shots = sorted({m["shots"] for m in means})
    width, height, pad = 520, 380, 60
    image = Image.new("RGB", (width * len(names), height + 90), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    methods = list(dict.fromkeys(m["method"] for m in means))
    for p, name in enumerate(names):
        x0, y0, x1, y1 = p * width + pad, 30, (p + 1) * width - 20, height - 30

        def xy(k: float, v: float, x0=x0, y0=y0, x1=x1, y1=y1) -> tuple[float, float]:
            frac = shots.index(k) / max(1, len(shots) - 1)
            return x0 + frac * (x1 - x0), y1 - v * (y1 - y0)

        draw.rectangle([x0, y0, x1, y1], outline="black")
        draw.text((x0, 8), f"{name}: test balanced accuracy vs images per class", fill="black", font=font)
        for v in (0.0, 0.25, 0.5, 0.75, 1.0):
            _, y = xy(shots[0], v)
            draw.line([x0 - 4, y, x0, y], fill="black")
            draw.text((x0 - 34, y - 6), f"{v:.2f}", fill="black", font=font)
        for k in shots:
            x, _ = xy(k, 0)
            draw.line([x, y1, x, y1 + 4], fill="black")
            draw.text((x - 4, y1 + 8), str(k), fill="black", font=font)
        _, yz = xy(shots[0], zero[name])
        draw.line([x0, yz, x1, yz], fill="#7f7f7f", width=1)
        draw.text((x1 - 60, yz - 14), "zero-shot", fill="#7f7f7f", font=font)
        for c, method in enumerate(methods):
            colour = COLOURS[c % len(COLOURS)]
            pts = sorted((m["shots"], m["mean"], m["std"]) for m in means if m["dataset"] == name and m["method"] == method)
            for k, mean, std in pts:
                x, y = xy(k, mean)
                _, top = xy(k, min(1.0, mean + std))
                _, bottom = xy(k, max(0.0, mean - std))
                draw.line([x, top, x, bottom], fill=colour)
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            draw.line([xy(k, mean) for k, mean, _ in pts], fill=colour, width=2)
    for c, method in enumerate(methods):
        x, y = 20 + (c % 4) * 250, height + 10 + (c // 4) * 20
        draw.rectangle([x, y + 3, x + 14, y + 9], fill=COLOURS[c % len(COLOURS)])
        draw.text((x + 20, y), METHODS[method][1], fill="black", font=font)
    draw.text((20, height + 60), "x: training images per class (K); bars: ± std over the seeds", fill="black", font=font)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["bloodmnist", "pneumoniamnist"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["probe", "probe_text", "probe_none", "tip_adapter_f"],
                        choices=list(METHODS))
    parser.add_argument("--runs", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--merge", type=Path, metavar="FILE",
                        help="an earlier kshot.json whose rows of other (dataset, method, K) points are kept")
    parser.add_argument("--combine", nargs="+", type=Path, metavar="FILE",
                        help="run nothing: write the table and plot from these kshot.json files (one row per "
                             "dataset, method, K and seed; a later file's row wins)")
    args = parser.parse_args(argv)
    if args.combine:
        missing = [str(f) for f in args.combine if not f.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)}")
        rows, zero = combined([json.loads(f.read_text(encoding="utf-8")) for f in args.combine])
        return _write(rows, zero)
    earlier = json.loads(args.merge.read_text(encoding="utf-8")) if args.merge else {}
    rows, zero = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        runs.mkdir(parents=True, exist_ok=True)
        for name in args.datasets:
            zero[name] = zero_shot(name, runs)
            for method in args.methods:
                for shots in args.shots:
                    for seed in args.seeds:
                        row = point(name, method, shots, seed, runs)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    rows, zero = merged(earlier, rows, zero)
    return _write(rows, zero)


def _write(rows: list[dict], zero: dict[str, float]) -> int:
    means = summary(rows)
    folder = out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kshot.json").write_text(json.dumps({"rows": rows, "zero_shot": zero}, indent=2) + "\n", encoding="utf-8")
    (folder / "kshot.md").write_text(markdown(means, zero), encoding="utf-8")
    plot(means, zero, folder / "kshot.png")
    print(markdown(means, zero))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
