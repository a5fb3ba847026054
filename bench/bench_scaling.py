"""Scaling: epoch time and embedding-cache build time at 1k, 10k and 50k synthetic images.

Row 8 (target: linear in N, i.e. the same time per 1,000 images at every N). Images are random
32 px PNGs in two class folders, written once per size; the model is the tests' tiny CLIP (32 px),
so the figures show the pipeline's overheads (decode, cache, batching, bookkeeping), not a big
model's arithmetic. Per N:

- image decode: ``decode_to_array`` into a fresh decoded-image cache (what a first training run does);
- epoch: one ``Trainer.fit`` epoch (method full, batch 64, no validation), TrainStarted to EpochEnded;
- embedding cache build: ``encode_image_files`` into a fresh ``EmbeddingCache``.

``--quick``: 100, 300 and 1,000 images.

    .venv/bin/python -m bench.bench_scaling [--quick] [--sizes 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import build_clip, machine, print_results, synthetic_class_folders


def measure(n: int, model, work: Path) -> dict[str, float]:
    from bench.bench_training import trainer_epoch
    from clipstudio.engine.cache.pixels import decode_to_array
    from clipstudio.engine.cache.vectors import EmbeddingCache
    from clipstudio.engine.data import load_dataset
    from clipstudio.engine.embeddings import encode_image_files

    folder = synthetic_class_folders(work / f"data_{n}", n, size=32)
    dataset = load_dataset(str(folder))
    paths = [Path(s.path) for s in dataset.samples]
    size = model.image_input_spec().size
    t0 = time.perf_counter()
    decoded = decode_to_array(paths, size, cache_root=work / "images")
    decode_s = time.perf_counter() - t0
    assert len(decoded.indices) == n
    # CLIPSTUDIO_CACHE_DIR is `work` (see run): the trainer finds these images already decoded.
    epoch_s, trained = trainer_epoch(model, dataset, folder, "full", 64, work / f"run_{n}", whole_epoch=True)
    t0 = time.perf_counter()
    encoded = encode_image_files(model, paths, cache=EmbeddingCache(work / f"emb_{n}"), batch_size=256)
    embed_s = time.perf_counter() - t0
    assert encoded.n_encoded == n
    return {"decode": decode_s, "epoch": epoch_s, "trained": trained, "embed": embed_s}


def run(quick: bool = False, sizes: list[int] | None = None) -> list[dict]:
    import torch

    from clipstudio.engine.models import load_model

    # One intra-op thread: a tiny model's ops are too small to split, and on a shared CPU the second
    # thread mostly waits for a core; the per-image overheads measured here are single-threaded anyway.
    torch.set_num_threads(1)
    sizes = sizes or ([100, 300, 1000] if quick else [1000, 10_000, 50_000])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["CLIPSTUDIO_CACHE_DIR"] = str(work)
        model = load_model(str(build_clip(work / "clip", "tiny")), device="cpu")
        for n in sizes:
            results[n] = measure(n, model, work)
    rows = []
    for key, what in (
        ("decode", "image decode into the pixel cache"),
        ("epoch", "training epoch (tiny CLIP, batch 64)"),
        ("embed", "embedding-cache build (tiny CLIP)"),
    ):
        per_k = {n: results[n][key] / n * 1000 for n in sizes}
        spread = max(per_k.values()) / min(per_k.values())
        rows.append(
            {
                "row": f"8 scaling: {what}, time per 1,000 images at N = "
                + " / ".join(f"{n:,}" for n in sizes),
                "baseline": f"N = {sizes[0]:,}: {per_k[sizes[0]]:.2f} s per 1k",
                "ours": " / ".join(f"{per_k[n]:.2f}" for n in sizes)
                + " s per 1k (totals "
                + " / ".join(f"{results[n][key]:.1f}" for n in sizes)
                + " s)",
                "ratio": f"per-1k at N={sizes[-1]:,} / at N={sizes[0]:,}: {per_k[sizes[-1]] / per_k[sizes[0]]:.2f}",
                "target": "linear in N (per-1k time flat)",
                "machine": machine(),
                "value": spread,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100, 300 and 1,000 images")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    args = ap.parse_args(argv)
    print_results("scaling", run(quick=args.quick, sizes=args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
