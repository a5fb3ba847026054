"""A second evaluation of the same images is served from the embedding cache.

Encodes N images (default 300 real chest X-rays) with a model twice, side by side in one run,
with a fresh cache folder, and reports the ratio first/second. Not a timed test: run it by hand
or from CI's bench smoke step.

    .venv/bin/python -m bench.bench_embedding_cache [--n 300] [--model builtin] [--data DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, write_results

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "pneumoniamnist" / "folders"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="number of images (default 300)")
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="any dataset CLIP Studio reads")
    ap.add_argument("--target", type=float, default=10.0, help="required speed-up (default 10x)")
    args = ap.parse_args(argv)

    from clipstudio.engine.cache.vectors import EmbeddingCache
    from clipstudio.engine.data import load_dataset
    from clipstudio.engine.embeddings import encode_image_files
    from clipstudio.engine.models import load_model

    dataset = load_dataset(args.data)
    paths = dataset.paths[: args.n]
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp))
        t0 = time.perf_counter()
        first = encode_image_files(model, paths, cache=cache)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = encode_image_files(model, paths, cache=cache)
        t_second = time.perf_counter() - t0
    assert second.n_encoded == 0, "the second pass re-encoded images"
    ratio = t_first / max(t_second, 1e-9)
    row = {
        "row": f"embedding cache: evaluate {len(paths)} images twice ({args.model})",
        "baseline": f"first pass {t_first:.3f} s ({first.n_encoded} encoded)",
        "ours": f"second pass {t_second:.4f} s ({second.n_cached} from cache)",
        "ratio": f"{ratio:.1f}x",
        "target": f">= {args.target:g}x",
        "machine": machine(),
    }
    json_path, md_path = write_results("embedding_cache", [row])
    print(md_path.read_text(encoding="utf-8"))
    ok = ratio >= args.target
    print(f"{'PASS' if ok else 'MISS'}: second evaluation {ratio:.1f}x faster (target {args.target:g}x); {json_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
