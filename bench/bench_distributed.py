"""Training throughput with one process against several (``clipstudio train --nproc-per-node N``).

The same run (built-in model, full fine-tuning, ``--images`` PneumoniaMNIST training images or
synthetic ones without the shared datasets, one epoch) trains through the real CLI with the same
global batch: one process with batch 2B against two processes with batch B each (gloo on the
CPU, NCCL on GPUs). Throughput is the median of the per-step images/s the run records in
``metrics.jsonl`` (all processes' images), the first step left out (start-up). On a CPU one
process may use every core (``threads``); torchrun gives each of several processes one thread.

On a machine with several GPUs, ``--gpus 1 2 4 8`` measures scaling efficiency instead: the rate
with N GPUs over N times the rate with one, at ``--batch-size`` images per GPU.

    .venv/bin/python -m bench.bench_distributed [--images 128] [--batch-size 16]
    .venv/bin/python -m bench.bench_distributed --gpus 1 2 4 8 --model openai/clip-vit-base-patch16 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import DATASETS, machine, synthetic_class_folders, write_results


def _images(root: Path, n: int) -> Path:
    """``n`` training images in two class folders: PneumoniaMNIST's first ones, or synthetic."""
    real = DATASETS / "pneumoniamnist" / "folders" / "train"
    if not real.is_dir():
        return synthetic_class_folders(root / "synthetic", n, size=28)
    target = root / "images"
    for c, folder in enumerate(sorted(p for p in real.iterdir() if p.is_dir())[:2]):
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(folder.iterdir())[: n // 2 + (n % 2 if c == 0 else 0)]:
            shutil.copy(image, target / folder.name / image.name)
    return target


def _train(data: Path, run: Path, *, model: str, device: str, batch: int, processes: int, threads: int) -> float:
    """Median images/s of one epoch through the CLI."""
    config = {
        "data": {"path": str(data), "val_fraction": 0.0},
        "model": {"spec": model, "device": device},
        "output": str(run),
        "epochs": 1,
        "batch_size": batch,
        "log_every_steps": 1,
        "save_best": False,
    }
    config_file = run.with_suffix(".json")
    config_file.write_text(json.dumps(config), encoding="utf-8")
    command = [sys.executable, "-m", "clipstudio", "train", "--config", str(config_file)]
    if processes > 1:
        command += ["--nproc-per-node", str(processes)]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, timeout=3600)
    rates = [json.loads(line)["images_per_s"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:] or rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="training images (default 128)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per process and step (default 16)")
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--gpus", type=int, nargs="+", help="GPU counts to measure scaling at (GPU machines)")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as folder:
        root = Path(folder)
        data = _images(root, args.images)
        b = args.batch_size
        if args.gpus:
            rates = {
                n: _train(data, root / f"gpu{n}", model=args.model, device="cuda", batch=b, processes=n, threads=1)
                for n in args.gpus
            }
            base = rates[min(rates)] / min(rates)
            for n, rate in rates.items():
                rows.append({
                    "row": f"{n} GPU(s), batch {b} per GPU (images/s)",
                    "baseline": f"{base * n:.1f} (linear)",
                    "ours": f"{rate:.1f}",
                    "ratio": f"{rate / (base * n):.0%} efficiency",
                    "target": ">= 90% at 8 GPUs",
                    "machine": machine(),
                })
        else:
            cores = os.cpu_count() or 1
            one_all = _train(data, root / "one_all", model=args.model, device="cpu", batch=2 * b, processes=1,
                             threads=cores)
            one_single = _train(data, root / "one_single", model=args.model, device="cpu", batch=2 * b,
                                processes=1, threads=1)
            two = _train(data, root / "two", model=args.model, device="cpu", batch=b, processes=2, threads=1)
            for name, rate in ((f"1 process, {cores} threads", one_all), ("1 process, 1 thread", one_single)):
                rows.append({
                    "row": f"CPU images/s, global batch {2 * b}: 2 processes x 1 thread vs {name}",
                    "baseline": f"{rate:.1f}",
                    "ours": f"{two:.1f}",
                    "ratio": f"{two / rate:.2f}x",
                    "target": "runs and is measured (2 shared cores: little gain expected)",
                    "machine": machine(),
                })
    json_path, md_path = write_results("distributed", rows)
    print(md_path.read_text(encoding="utf-8"))
    print(f"written: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
