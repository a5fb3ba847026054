"""How well method "auto" picks: its pick on every benchmark row of docs/ADAPTATION.md, next to the best method there.

    .venv/bin/python -m bench.auto_rule      # reads docs/adaptation/{subsets,full,full_lr,kshot}.json; a few seconds

A row is a dataset of the 600-image subsets, or a dataset at K training images per class (the K-shot
curves). A method's score on a row is its test balanced accuracy (K-shot rows: the mean over the split
seeds). The per-class counts auto sees are those of the app's own split (20% of train held out for
validation) or K. For each fixed method, auto's picks are totalled over the rows where both were
measured, so auto is compared with every single method on the same rows.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from bench.common import DATASETS
from clipstudio.engine.config import BUILTIN_LEARNING_RATES, DataConfig
from clipstudio.engine.data.readers import load_dataset
from clipstudio.engine.training.batches import training_splits
from clipstudio.engine.training.methods.auto import choose_method

DOCS = Path(__file__).resolve().parents[1] / "docs" / "adaptation"
# Benchmark method name -> the TrainConfig.method auto may pick. The probe rows are the default (automatic prior).
METHOD_OF = {"probe": "linear_probe", "tip_adapter": "tip_adapter", "tip_adapter_f": "tip_adapter_f", "full": "full",
             "clip_lora_none": "clip_lora"}  # the preset, run without augmentation (bench.kshot)


def _per_class_training_images(name: str) -> list[int]:
    """Training images per class as the app splits the subset (its default validation share and seed)."""
    dataset = load_dataset(str(DATASETS / name / "folders"))
    train, _ = training_splits(dataset, DataConfig(path=str(DATASETS / name / "folders")))
    counts = Counter(dataset.samples[i].label for i in train)
    return [counts.get(label, 0) for label in range(len(dataset.class_names))]


def benchmark_rows() -> list[dict]:
    """[{"row", "counts", "scores": {method: balanced accuracy}}] for the subsets and the K-shot curves."""
    rows: dict[str, dict] = {}
    # full_lr.json: full fine-tuning at the built-in model's own default rate, which replaces the
    # 1e-5 rows of full.json where it was measured.
    for file in ("subsets.json", "full.json", "full_lr.json"):
        for r in json.loads((DOCS / file).read_text(encoding="utf-8")):
            if r.get("learning_rate", BUILTIN_LEARNING_RATES["full"]) != BUILTIN_LEARNING_RATES["full"]:
                continue
            if r["method"] in METHOD_OF:
                row = rows.setdefault(r["dataset"], {"row": f"{r['dataset']} (subset)", "scores": {}})
                row["scores"][METHOD_OF[r["method"]]] = r["balanced_accuracy"]
    for name, row in rows.items():
        row["counts"] = _per_class_training_images(name)
    kshot = json.loads((DOCS / "kshot.json").read_text(encoding="utf-8"))
    classes = {name: len(_per_class_training_images(name)) for name in {r["dataset"] for r in kshot["rows"]}}
    seeds: dict[tuple, list[float]] = defaultdict(list)
    for r in kshot["rows"]:
        if r["method"] in METHOD_OF:
            seeds[(r["dataset"], r["shots"], METHOD_OF[r["method"]])].append(r["balanced_accuracy"])
    shots_rows: dict[tuple, dict] = {}
    for (name, k, method), values in sorted(seeds.items()):
        row = shots_rows.setdefault((name, k), {"row": f"{name}, K = {k}", "counts": [k] * classes[name], "scores": {}})
        row["scores"][method] = statistics.mean(values)
    return list(rows.values()) + list(shots_rows.values())


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark row | training images in a typical class | auto picks | its balanced accuracy | "
             "best method measured | best balanced accuracy |", "|---|---|---|---|---|---|"]
    for r in rows:
        pick = choose_method(r["counts"]).method
        best = max(r["scores"], key=r["scores"].get)
        mine = f"{r['scores'][pick]:.3f}" if pick in r["scores"] else "not measured"
        lines.append(f"| {r['row']} | {statistics.median(r['counts']):g} | {pick} | {mine} | {best} | "
                     f"{r['scores'][best]:.3f} |")
    lines += ["", "| fixed method | rows where both were measured | fixed method, mean | auto, mean | auto ahead / level / behind |",
              "|---|---|---|---|---|"]
    for method in ("linear_probe", "tip_adapter", "tip_adapter_f", "full", "clip_lora"):
        pairs = [(r["scores"][method], r["scores"][choose_method(r["counts"]).method]) for r in rows
                 if method in r["scores"] and choose_method(r["counts"]).method in r["scores"]]
        if not pairs:
            continue
        ahead = sum(a > f for f, a in pairs)
        level = sum(a == f for f, a in pairs)
        lines.append(f"| {method} | {len(pairs)} | {statistics.mean(f for f, _ in pairs):.3f} | "
                     f"{statistics.mean(a for _, a in pairs):.3f} | {ahead} / {level} / {len(pairs) - ahead - level} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    print(markdown(benchmark_rows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
