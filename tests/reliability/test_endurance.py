"""Endurance: a long run of a tiny model does not grow the process's memory.

The full soak (2,000 steps, drift reported) is ``bench/bench_endurance.py``; this is its reduced
version: 300 optimizer steps with validation and a checkpoint every epoch, RSS sampled at each
step. Warm-up (allocator pools, lazily built kernels) ends within the first quarter, so the
median RSS of the last quarter is compared with that of the second.
"""

from __future__ import annotations

import importlib.util
import os
import statistics

import pytest
import torch

from clipstudio.engine.config import DataConfig, ModelConfig, PromptConfig, TrainConfig
from clipstudio.engine.training.trainer import Trainer

STEPS = 300


def rss_bytes() -> int:
    """Resident set size of this process (psutil when installed, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def _can_read_rss() -> bool:
    return importlib.util.find_spec("psutil") is not None or os.path.exists("/proc/self/statm")


@pytest.mark.slow  # 300 training steps
@pytest.mark.skipif(not _can_read_rss(), reason="needs psutil or /proc to read the RSS")
def test_300_training_steps_do_not_grow_memory(tmp_path, make_class_folders, tiny_dual_dir):
    data = make_class_folders(tmp_path / "classes", {"red": 25, "green": 25, "blue": 25})
    cfg = TrainConfig(
        data=DataConfig(path=str(data), val_fraction=0.2, seed=0),
        model=ModelConfig(spec=str(tiny_dual_dir), device="cpu"),
        prompts=PromptConfig(templates=["a photo of {class_name}."]),
        output=str(tmp_path / "run"),
        epochs=STEPS // 15,  # 60 training images in batches of 4: 15 steps per epoch
        batch_size=4,
        learning_rate=1e-4,
        warmup_steps=0,
        amp=False,
        num_workers=1,
        img_size=16,
        augmentation="standard",
        save_best=True,
    )
    samples: dict[int, int] = {}

    def sample() -> bool:
        samples.setdefault(trainer.steps_done, rss_bytes())  # polled after every step and val batch
        return False

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(cfg, should_stop=sample)
        result = trainer.fit()
    finally:
        torch.set_num_threads(threads)

    assert result.status == "completed", result.message
    assert trainer.steps_done == STEPS
    rss = [samples[step] for step in sorted(samples) if step > 0]
    quarter = len(rss) // 4
    second = statistics.median(rss[quarter : 2 * quarter])
    last = statistics.median(rss[3 * quarter :])
    growth = last - second
    assert growth <= max(0.10 * second, 16 * 2**20), (
        f"RSS grew {growth / 2**20:.1f} MB ({100 * growth / second:.1f}%) "
        f"from {second / 2**20:.0f} MB over steps {quarter}-{2 * quarter} to the last quarter"
    )
