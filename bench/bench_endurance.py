"""Endurance: 2,000 training steps of a tiny model with the process's RSS sampled at every step.

A tiny dual encoder (small CNN + 2-layer BERT) fine-tunes on generated class images with
augmentation, validation and checkpoint_latest + checkpoint_best every epoch, as a real run does.
Drift is the median RSS of the last quarter of the steps against that of the second quarter
(the first quarter is warm-up: allocator pools, lazily built kernels). The reduced version is
tests/reliability/test_endurance.py. Not a timed test.

    .venv/bin/python -m bench.bench_endurance [--steps 2000] [--target 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, write_results
from clipstudio.engine.config import DataConfig, ModelConfig, PromptConfig, TrainConfig

MB = 2**20


def rss_bytes() -> int:
    """Resident set size of this process (psutil when installed, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def soak_config(data: Path, model_dir: Path, output: Path, epochs: int, batch_size: int = 4) -> TrainConfig:
    """The soak's run (also tests/reliability/test_endurance.py's): 16 px images with augmentation,
    a fifth held out for validation, checkpoint_latest and checkpoint_best every epoch."""
    return TrainConfig(
        data=DataConfig(path=str(data), val_fraction=0.2, seed=0),
        model=ModelConfig(spec=str(model_dir), device="cpu"),
        prompts=PromptConfig(templates=["a photo of {class_name}."]),
        output=str(output),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=1e-4,
        warmup_steps=0,
        amp=False,
        num_workers=1,
        img_size=16,
        augmentation="standard",
        save_best=True,
    )


def second_and_last_quarter_medians(rss: list[int]) -> tuple[float, float]:
    """Median RSS of the second quarter of the steps (warm-up is over) and of the last quarter."""
    quarter = len(rss) // 4
    return statistics.median(rss[quarter : 2 * quarter]), statistics.median(rss[3 * quarter :])


def soak(steps: int, workdir: Path, *, per_class: int = 80, batch_size: int = 4) -> dict:
    """Train for ``steps`` optimizer steps in ``workdir``; RSS (bytes) per step and the wall time."""
    from clipstudio.engine.events import TrainingStatus
    from clipstudio.engine.training.trainer import Trainer
    from tests.fixtures_data import write_png
    from tests.fixtures_models import build_tiny_dual

    model_dir = build_tiny_dual(workdir / "tiny_dual")
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for name, (r, g, b) in colours.items():
        for i in range(per_class):
            shade = 10 * (i % 5)
            write_png(workdir / "classes" / name / f"{name}_{i}.png", (r - shade, g - shade, b - shade))
    n_train = 3 * per_class - round(0.2 * 3 * per_class)
    steps_per_epoch = n_train // batch_size
    # generous epochs: sample() stops the run at ``steps``
    epochs = -(-steps // steps_per_epoch) + 2
    cfg = soak_config(workdir / "classes", model_dir, workdir / "run", epochs, batch_size)
    samples: dict[int, int] = {}

    def sample() -> bool:
        samples.setdefault(trainer.steps_done, rss_bytes())
        return trainer.steps_done >= steps  # stop at exactly ``steps`` (a clean cancel)

    trainer = Trainer(cfg, should_stop=sample)
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    if result.status not in (TrainingStatus.COMPLETED, TrainingStatus.CANCELLED):
        raise RuntimeError(f"the soak run ended {result.status}: {result.message}")
    return {
        "rss": [samples[s] for s in sorted(samples) if s > 0],
        "steps": trainer.steps_done,
        "epochs": len(result.history.get("epoch", [])),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    ap.add_argument("--target", type=float, default=5.0, help="largest acceptable drift in %% (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="clipstudio-endurance-") as tmp:
        workdir = Path(tmp)
        # Caches and logs go to the temp folder, never the user's.
        os.environ["CLIPSTUDIO_HOME"] = str(workdir / "home")
        os.environ["CLIPSTUDIO_CACHE_DIR"] = str(workdir / "home" / "cache")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        run = soak(args.steps, workdir)

    rss = run["rss"]
    quarter = len(rss) // 4
    second, last = second_and_last_quarter_medians(rss)
    drift = 100 * (last - second) / second
    row = {
        "row": f"RSS over {run['steps']:,} training steps (tiny dual encoder, {run['epochs']} epochs, "
        "validation and checkpoints every epoch)",
        "baseline": f"2nd-quarter median {second / MB:.1f} MB",
        "ours": f"last-quarter median {last / MB:.1f} MB",
        "ratio": f"drift {drift:+.2f}%",
        "target": f"< {args.target:g}%",
        "machine": machine(),
        "steps": run["steps"],
        "seconds": round(run["seconds"], 1),
        "rss_first_mb": round(rss[0] / MB, 1),
        "rss_max_mb": round(max(rss) / MB, 1),
        "rss_quartile_medians_mb": [
            round(statistics.median(rss[i * quarter : (i + 1) * quarter]) / MB, 1) for i in range(4)
        ],
        "drift_percent": round(drift, 3),
    }
    json_path, md_path = write_results("endurance", [row])
    print(md_path.read_text(encoding="utf-8"))
    ok = drift < args.target
    print(f"{'PASS' if ok else 'MISS'}: RSS drift {drift:+.2f}% (target < {args.target:g}%); {json_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
