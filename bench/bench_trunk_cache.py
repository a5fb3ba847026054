"""CLIP-LoRA steps on the built-in model: the frozen image trunk kept per image, each class prompt encoded once.

    .venv/bin/python -m bench.bench_trunk_cache [--dataset bloodmnist] [--shots 4] [--steps 300]

The built-in model's image tower (EfficientNet-Lite0) has no attention, so the CLIP-LoRA preset
adapts only the text tower and trains the image projection; without augmentation
(``--augmentation none``) every training image gives the trunk the same pixels at every step, and
``training.trunk_cache`` computes its features once; and a step's batch of 32 images holds one prompt
per class, which the text tower now encodes once each (``ContrastiveMethod._batch_texts``). This
script trains the same few-shot run (``clipstudio train DATA --model builtin --preset clip-lora
--shots K --augmentation none --steps N``) three times, side by side: as before (trunk and every
row's text at every step), with the texts encoded once, and with both; it reports the optimizer
steps per second of each, the ratios, and the largest difference between the last two runs' epoch
losses (the cache must not change them; encoding texts once changes the dropout masks, so the first
run's losses differ by sampling). Writes out/trunk_cache.json and .md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import DATASETS, machine, print_results


def _run(data: Path, shots: int, steps: int, output: Path, *, cached: bool, texts_once: bool) -> tuple[float, list[float]]:
    from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
    from clipstudio.engine.events import EpochEnded
    from clipstudio.engine.training.methods.contrastive import ContrastiveMethod
    from clipstudio.engine.training.presets import CLIP_LORA, apply_preset
    from clipstudio.engine.training.trainer import Trainer

    cfg = TrainConfig(data=DataConfig(path=str(data), shots_per_class=shots, seed=0),
                      model=ModelConfig(spec="builtin", device="cpu"), output=str(output),
                      augmentation="none", epochs=2, save_best=False)  # fmt: skip
    cfg = apply_preset(cfg, CLIP_LORA)
    cfg.steps = steps
    losses: list[float] = []

    def record(event: object) -> None:
        if isinstance(event, EpochEnded):
            losses.append(event.train_loss)

    fixed, texts = ContrastiveMethod._trunk_is_fixed, ContrastiveMethod._batch_texts
    if not cached:
        ContrastiveMethod._trunk_is_fixed = lambda self: False
    if not texts_once:
        ContrastiveMethod._batch_texts = lambda self, batch, tokens: self.model.forward_texts(tokens)
    try:
        started = time.perf_counter()
        Trainer(cfg, callbacks=[record]).fit()
        seconds = time.perf_counter() - started
    finally:
        ContrastiveMethod._trunk_is_fixed, ContrastiveMethod._batch_texts = fixed, texts
    return seconds, losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="bloodmnist")
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    data = DATASETS / args.dataset / "folders"
    with tempfile.TemporaryDirectory() as tmp:
        before_s, _ = _run(data, args.shots, args.steps, Path(tmp) / "before", cached=False, texts_once=False)
        texts_s, texts_losses = _run(data, args.shots, args.steps, Path(tmp) / "texts", cached=False, texts_once=True)
        both_s, both_losses = _run(data, args.shots, args.steps, Path(tmp) / "both", cached=True, texts_once=True)
    gap = max(abs(a - b) for a, b in zip(texts_losses, both_losses, strict=True))
    what = f"CLIP-LoRA, built-in model, {args.dataset} K={args.shots}, {args.steps} steps (incl. 2 validations)"
    baseline = f"{args.steps / before_s:.2f} steps/s (trunk and every row's text each step)"
    rows = [
        {"row": f"{what}: each class prompt once", "baseline": baseline,
         "ours": f"{args.steps / texts_s:.2f} steps/s", "ratio": f"{before_s / texts_s:.2f}x faster",
         "target": "faster", "machine": machine()},
        {"row": f"{what}: + the trunk cached", "baseline": baseline,
         "ours": f"{args.steps / both_s:.2f} steps/s", "ratio": f"{before_s / both_s:.2f}x faster",
         "target": f"the cache leaves the epoch losses as they are (largest difference {gap:.1e})",
         "machine": machine()},
    ]
    print_results("trunk_cache", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
