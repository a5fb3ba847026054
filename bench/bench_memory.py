"""Memory: peak RSS training a ViT-B/32-sized CLIP at batch 32, and RSS drift over 1,000 tiny-model steps.

Row 7 (drift target < 5%). Each measurement runs in a fresh process so earlier work can't inflate it.

- Peak: ``Trainer.fit`` (method full, bf16 autocast, AdamW) on a random-init ViT-B/32-sized CLIP,
  batch 32, one step (it allocates all that training keeps: gradients, AdamW state); peak RSS (``ru_maxrss``) against the process's RSS after loading the model.
- Drift: ``Trainer.fit`` of the tests' tiny CLIP for 1,000 optimizer steps (10 epochs, a checkpoint
  each; one intra-op thread); RSS at step 100 against RSS at the last step.

    .venv/bin/python -m bench.bench_memory [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import machine, quick_or_full_main

ROOT = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _child(kind: str, steps: int, batch: int, work: Path) -> dict:
    import torch

    from bench.bench_training import _dataset
    from bench.common import build_clip
    from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
    from clipstudio.engine.events import StepEnded
    from clipstudio.engine.models import load_model
    from clipstudio.engine.training.trainer import Trainer

    os.environ["CLIPSTUDIO_CACHE_DIR"] = str(work / "cache")
    if kind == "tiny":
        # A tiny model's ops are too small to split over threads; on a shared CPU the second thread
        # mostly waits for a core, making each step ~4x slower. Memory behaviour is the same.
        torch.set_num_threads(1)
    folder = build_clip(work / kind, kind)
    model = load_model(str(folder), device="cpu")
    loaded = _rss_mib()
    per_epoch = max(1, steps // 10) if kind == "tiny" else steps
    epochs = steps // per_epoch
    dataset, data_path = _dataset(work, per_epoch * batch)
    samples: list[tuple[int, float]] = []

    def on_event(event) -> None:
        if isinstance(event, StepEnded):
            samples.append((event.step, _rss_mib()))

    cfg = TrainConfig(
        data=DataConfig(path=str(data_path), val_fraction=0.0),
        model=ModelConfig(spec=str(folder), device="cpu"),
        output=str(work / "run"),
        epochs=epochs,
        batch_size=batch,
        augmentation="minimal",
        save_best=False,
        log_every_steps=1,
    )
    train = list(range(len(dataset)))
    result = Trainer(
        cfg, callbacks=[on_event], model=model, dataset=dataset, train_indices=train, val_indices=[]
    ).fit()
    return {
        "status": result.status,
        "loaded": loaded,
        "peak": _peak_mib(),
        "samples": samples,
        "steps": samples[-1][0] if samples else 0,
    }


def _in_process(kind: str, steps: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_memory", "--child", kind, str(steps), str(batch), tmp],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.split("RESULT ")[-1])


def run(quick: bool = False) -> list[dict]:
    rows = []
    # One step at batch 32 allocates everything training keeps (gradients, AdamW state); later steps reuse it.
    peak_kind, peak_steps, peak_batch = ("tiny", 1, 8) if quick else ("vit_b32", 1, 32)
    peak = _in_process(peak_kind, peak_steps, peak_batch)
    label = "tiny CLIP (quick)" if quick else "CLIP ViT-B/32-sized"
    rows.append(
        {
            "row": f"7 memory: peak RSS training {label}, batch {peak_batch}, {peak['steps']} steps (bf16 autocast, AdamW)",
            "baseline": f"after loading the model {peak['loaded']:.0f} MiB",
            "ours": f"peak {peak['peak']:.0f} MiB",
            "ratio": f"{peak['peak'] / peak['loaded']:.1f}x of loaded",
            "target": "report",
            "machine": machine(),
            "value": peak["peak"],
        }
    )
    steps = 100 if quick else 1000
    drift = _in_process("tiny", steps, 4)
    samples = drift["samples"]
    early = next((rss for step, rss in samples if step >= steps // 10), samples[0][1])
    late = samples[-1][1]
    change = (late - early) / early * 100
    rows.append(
        {
            "row": f"7 memory: RSS drift over {drift['steps']} steps, tiny CLIP, batch 4 ({drift['steps'] // 100} checkpoints)",
            "baseline": f"RSS at step {steps // 10}: {early:.0f} MiB",
            "ours": f"RSS at step {samples[-1][0]}: {late:.0f} MiB",
            "ratio": f"{change:+.1f}%",
            "target": "drift < 5%",
            "machine": machine(),
            "value": change,
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        result = _child(argv[1], int(argv[2]), int(argv[3]), Path(argv[4]))
        print("RESULT " + json.dumps(result))
        return 0
    return quick_or_full_main("memory", run, __doc__.splitlines()[0], "tiny model, 100 steps", argv)


if __name__ == "__main__":
    sys.exit(main())
