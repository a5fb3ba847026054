"""Shared bits of the benchmark scripts: machine description and JSON + markdown output."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
OUT_ENV = "CLIPSTUDIO_BENCH_OUT"  # bench.run_all --out DIR: where every script writes


def out_dir() -> Path:
    return Path(os.environ.get(OUT_ENV) or OUT_DIR)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores {cpu}, {gpu}, torch {torch.__version__}"


def write_results(name: str, rows: list[dict]) -> tuple[Path, Path]:
    """Write ``out/<name>.json`` and ``out/<name>.md`` (row, baseline, ours, ratio, target, machine)."""
    folder = out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{name}.json"
    md_path = folder / f"{name}.md"
    json_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown_table(rows), encoding="utf-8")
    return json_path, md_path


def print_results(name: str, rows: list[dict]) -> None:
    """Write ``out/<name>.json`` and ``.md`` and print the markdown table."""
    _, md = write_results(name, rows)
    print(md.read_text(encoding="utf-8"))


def quick_or_full_main(name: str, run, description: str, quick_help: str, argv: list[str] | None) -> int:
    """The command line of a script whose only option is ``--quick``: ``run(quick=...)``, then its table."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    args = ap.parse_args(argv)
    print_results(name, run(quick=args.quick))
    return 0


COLUMNS = ["row", "baseline", "ours", "ratio", "target", "machine"]


def markdown_table(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# --- helpers for the suite (bench.run_all) ------------------------------------------------------

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MODELS_ENV = "CLIPSTUDIO_BENCH_MODELS"


def interleaved(candidates: dict, repeats: int, *, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each zero-argument callable, run in turns (A, B, A, B, ...) so load hits all alike.

    A callable may return its own elapsed seconds (to leave set-up out); otherwise its wall time counts.
    """
    import statistics
    import time

    if warmup:
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            inner = fn()
            times[name].append(inner if isinstance(inner, float) else time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def build_clip(folder: Path, size: str) -> Path:
    """A random-init Hugging Face CLIP saved to ``folder`` offline with the real CLIP tokenizer.

    size "vit_b32": ViT-B/32's shapes (224 px, patch 32, 12+12 layers, 151 M parameters); "tiny": the
    test suite's tiny CLIP. Random weights are fine for speed.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    from tests.fixtures_models import build_tiny_clip, write_clip_vocab

    shared = os.environ.get(MODELS_ENV)
    if shared:  # bench.run_all: build each size once per suite run, in its temporary folder
        folder = Path(shared) / size
        if (folder / "preprocessor_config.json").is_file():
            return folder
    if size == "tiny":
        return build_tiny_clip(folder)
    write_clip_vocab(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer)),  # defaults: width 512, 12 layers, 77 tokens
        vision_config=dict(image_size=224, patch_size=32),  # defaults: width 768, 12 layers
        projection_dim=512,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)
    return folder


def synthetic_class_folders(folder: Path, n: int, *, size: int = 32, classes: int = 2, seed: int = 0) -> Path:
    """``n`` random-noise PNGs in ``classes`` class folders (train/ split), for scaling runs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (folder / "train" / f"class_{c}").mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(min(n, 512), size, size, 3), dtype=np.uint8)
    for i in range(n):
        image = pixels[i % len(pixels)].copy()
        image[0, 0] = (i % 256, (i // 256) % 256, (i // 65536) % 256)  # every file distinct
        Image.fromarray(image).save(
            folder / "train" / f"class_{i % classes}" / f"img_{i:06d}.png", compress_level=1
        )
    return folder


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:.0f}x"
