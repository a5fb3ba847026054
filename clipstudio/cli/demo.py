"""``clipstudio demo``: a headless end-to-end run on the bundled sample with the built-in model.

It reads and checks the sample, encodes it once, compares three prompt sets on the cached
embeddings, searches by text, and writes a JSON report. It is the first thing a new user runs.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from clipstudio.cli.args import field_help
from clipstudio.cli.console import EXIT_FAILED, EXIT_OK, ProgressBars
from clipstudio.cli.inspect import format_health
from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.health import health_report
from clipstudio.engine.embeddings import encode_image_files
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.search import search_text
from clipstudio.engine.evaluation.zero_shot import (
    class_text_embeddings,
    compare_prompt_sets,
    score_embeddings,
)
from clipstudio.engine.events import TrainingStatus
from clipstudio.engine.prompts import DEFAULT_TEMPLATES, PromptSet
from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.storage.paths import samples_dir, user_data_dir

SAMPLE_CLASS_TEXTS = {
    "normal": ["a chest X-ray with normal lungs", "a normal paediatric chest radiograph with clear lungs"],
    "pneumonia": ["a chest X-ray showing pneumonia", "a paediatric chest radiograph with lung consolidation"],
}


HELP = "headless end-to-end run on the bundled sample with the built-in model"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("--model", default="builtin", metavar="M", help=field_help(ModelConfig, "spec"))
    p.add_argument("--device", default="auto", help=field_help(ModelConfig, "device"))
    p.add_argument("--out", metavar="FOLDER", help="where to write the demo report (default: app data folder)")


def run(args: argparse.Namespace) -> int:
    return EXIT_OK if run_demo(model_spec=args.model, device=args.device, out=args.out) else EXIT_FAILED


def run_demo(*, model_spec: str = "builtin", device: str = "auto", out: str | Path | None = None,
             print_fn=print) -> bool:
    """Run the demo; True when every step produced a finite result."""
    t_start = time.perf_counter()
    sample = samples_dir() / "chest_xray"
    print_fn(f"CLIP Studio demo: bundled sample {sample}")
    dataset = load_dataset(sample)
    bars = ProgressBars()
    report = health_report(dataset, callback=bars).to_dict()
    print_fn(format_health(report, dataset))

    from clipstudio.engine.models import load_model  # deferred: torch; `--help` stays instant

    print_fn(f"\nLoading model '{model_spec}'...")
    t0 = time.perf_counter()
    model = load_model(model_spec, device=device)
    t_model = time.perf_counter() - t0
    print_fn(f"Model ready on {model.device} in {t_model:.1f} s (embedding size {model.embed_dim}).")

    cache = EmbeddingCache()
    t0 = time.perf_counter()
    first = encode_image_files(model, dataset.paths, cache=cache, callback=bars)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = encode_image_files(model, dataset.paths, cache=cache, callback=bars)
    t_second = time.perf_counter() - t0
    bars.close()
    print_fn(f"Encoded {len(first.indices)} images in {t_first:.2f} s "
             f"({first.n_cached} from cache); again in {t_second:.3f} s ({second.n_cached} from cache).")

    labels = np.array([dataset.samples[i].label for i in first.indices])
    paths = [dataset.samples[i].path for i in first.indices]
    sets = [
        PromptSet(name="default ensemble", templates=list(DEFAULT_TEMPLATES)),
        PromptSet(name="chest X-ray template", templates=["a chest X-ray showing {class_name}."]),
        PromptSet(name="class descriptions", class_texts=SAMPLE_CLASS_TEXTS),
    ]
    store = EmbeddingStore(cache)
    rows = compare_prompt_sets(store, model, dataset, sets)
    print_fn("\nPrompt sets compared on the same cached image embeddings:")
    print_fn(f"{'prompt set':<24}{'accuracy':>10}{'balanced':>10}")
    for row in rows:
        print_fn(f"{row['name']:<24}{row['accuracy']:>10.3f}{row['balanced_accuracy']:>10.3f}")

    best = max(rows, key=lambda r: r["balanced_accuracy"])
    best_set = next(s for s in sets if s.name == best["name"])
    text_emb = class_text_embeddings(model, dataset.class_names, best_set)
    result = score_embeddings(first.embeddings, labels, text_emb, dataset.class_names,
                              logit_scale=model.logit_scale, paths=paths)
    zs = result.to_dict()
    print_fn(f"\nBest set '{best['name']}': accuracy {zs['accuracy']:.3f} "
             f"(95% CI {zs['ci95']['accuracy'][0]:.3f}-{zs['ci95']['accuracy'][1]:.3f}), "
             f"balanced accuracy {zs['balanced_accuracy']:.3f}")
    print_fn("  (A general-purpose model sees 28-px X-rays as out-of-domain: this is the starting point that "
             "fine-tuning improves.)")

    query = "a chest X-ray showing pneumonia"
    hits = search_text(store, model, dataset, query, top=5)
    print_fn(f"\nTop 5 images for '{query}':")
    for rank, hit in enumerate(hits, 1):
        print_fn(f"  {rank}. {hit.score:.3f}  {Path(hit.path).parent.name}/{Path(hit.path).name}")

    out_dir = Path(out) if out else user_data_dir() / "demo"
    probe = _linear_probe(model, dataset, model_spec, out_dir / "linear_probe_run", print_fn)
    report_path = atomic_write_json(out_dir / "demo_report.json", {
        "sample": str(sample),
        "model": model_spec,
        "device": str(model.device),
        "health": report,
        "prompt_sets": rows,
        "zero_shot": zs,
        "linear_probe": probe,
        "search": {"query": query, "hits": [{"path": str(h.path), "score": float(h.score)} for h in hits]},
        "timings_s": {"model_load": t_model, "encode_first": t_first, "encode_cached": t_second,
                      "total": time.perf_counter() - t_start},
    })
    print_fn(f"\nReport written to {report_path}")

    ok = (len(first.indices) == len(dataset) and second.n_cached == len(dataset) and len(hits) == 5
          and all(math.isfinite(r["accuracy"]) for r in rows) and probe["status"] == TrainingStatus.COMPLETED)
    if not ok:
        print("clipstudio: demo self-check failed (see the report above)", file=sys.stderr)
    return ok


def _linear_probe(model, dataset, model_spec: str, run_dir: Path, print_fn) -> dict:
    """Fine-tune a linear probe on the cached embeddings (seconds) and report before -> after on val."""
    from clipstudio.engine.training.trainer import Trainer  # deferred: torch; `--help` stays instant

    shutil.rmtree(run_dir, ignore_errors=True)  # the demo's own run folder, rewritten each time
    cfg = TrainConfig(data=DataConfig(path=str(dataset.source or dataset.root), val_fraction=0.25, seed=0),
                      model=ModelConfig(spec=model_spec), output=str(run_dir), method="linear_probe",
                      epochs=30, seed=0)
    print_fn(f"\nFine-tuning a linear probe on {len(dataset)} images (75% train / 25% validation)...")
    t0 = time.perf_counter()
    result = Trainer(cfg, model=model, dataset=dataset).fit()
    history = result.history or {}
    before = (history.get("initial") or {}).get("val_balanced_acc")
    after = result.best_metric
    seconds = time.perf_counter() - t0
    if before is not None and after is not None:
        print_fn(f"Validation balanced accuracy: {before:.3f} zero-shot -> {after:.3f} after {seconds:.1f} s "
                 f"of training ({result.status}). Run folder: {result.run_dir}")
    else:
        print_fn(f"Linear probe {result.status}: {result.message}")
    print_fn("  (48 images is a toy set: open the app, or run 'clipstudio train', on your own data.)")
    return {"status": result.status, "val_balanced_acc_before": before, "val_balanced_acc_after": after,
            "seconds": seconds, "run_dir": str(result.run_dir)}
