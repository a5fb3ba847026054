"""Endurance: a long run of a tiny model does not grow the process's memory.

The full soak (2,000 steps, drift reported) is ``bench/bench_endurance.py``; this is its reduced
version: 300 optimizer steps with validation and a checkpoint every epoch, RSS sampled at each
step. Warm-up (allocator pools, lazily built kernels) ends within the first quarter, so the
median RSS of the last quarter is compared with that of the second.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from bench.bench_endurance import rss_bytes, second_and_last_quarter_medians, soak_config
from clipstudio.engine.training.trainer import Trainer

STEPS = 300


def _can_read_rss() -> bool:
    return importlib.util.find_spec("psutil") is not None or os.path.exists("/proc/self/statm")


@pytest.mark.slow  # 300 training steps
@pytest.mark.skipif(not _can_read_rss(), reason="needs psutil or /proc to read the RSS")
def test_300_training_steps_do_not_grow_memory(tmp_path, make_class_folders, tiny_dual_dir):
    data = make_class_folders(tmp_path / "classes", {"red": 25, "green": 25, "blue": 25})
    # 60 training images in batches of 4: 15 steps per epoch
    cfg = soak_config(data, tiny_dual_dir, tmp_path / "run", epochs=STEPS // 15)
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
    second, last = second_and_last_quarter_medians(rss)
    growth = last - second
    assert growth <= max(0.10 * second, 16 * 2**20), (
        f"RSS grew {growth / 2**20:.1f} MB ({100 * growth / second:.1f}%) "
        f"from {second / 2**20:.0f} MB over steps {quarter}-{2 * quarter} to the last quarter"
    )
