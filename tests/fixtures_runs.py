"""Shared training fixtures: an event recorder and finished runs of the tiny CLIP.

- ``recorder``: a :class:`Recorder` callback that keeps every event (``recorder.of(TrainEnded)``).
- ``quick_train_config(data, model_dir, output, **overrides)``: a small, fast, deterministic TrainConfig.
- ``trained``: session-scoped, read-only by convention (copy a run before damaging it):
  ``{"data": <3 colour classes x 6 images>, "full": <1-epoch full fine-tuning run>,
  "probe": <4-epoch linear-probe run>, "start": <the tiny CLIP folder both started from>}``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
from tests.fixtures_data import _PALETTE, write_png


class Recorder:
    """A training callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def quick_train_config(
    data: Path, model_dir: Path, output: Path, /, *, val_fraction: float = 0.34, **overrides
) -> TrainConfig:
    """A small, fast, deterministic run on the CPU: 2 epochs of batch 8, no AMP, one loader worker, a log
    line every step, no best-checkpoint copy; ``overrides`` are TrainConfig fields (an ``output`` one wins)."""
    settings = dict(
        output=str(output),
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        warmup_steps=1,
        amp=False,
        num_workers=1,
        log_every_steps=1,
        save_best=False,
    )
    settings.update(overrides)
    return TrainConfig(
        data=DataConfig(path=str(data), val_fraction=val_fraction, seed=0),
        model=ModelConfig(spec=str(model_dir), device="cpu"),
        **settings,
    )


def stop_after_two_epochs_and_resume(cfg, tmp_path: Path):
    """(an uninterrupted run of ``cfg``, the same run stopped after its second epoch and resumed)."""
    import dataclasses

    from clipstudio.engine.events import EvalEnded
    from clipstudio.engine.training.trainer import Trainer

    whole = Trainer(dataclasses.replace(cfg, output=str(tmp_path / "whole"))).fit()
    epochs_seen = []

    def count_epochs(event):
        if isinstance(event, EvalEnded) and event.epoch:
            epochs_seen.append(event.epoch)

    stopped = Trainer(cfg, callbacks=[count_epochs], should_stop=lambda: len(epochs_seen) >= 2).fit()
    assert stopped.status == "cancelled"
    resumed = Trainer(dataclasses.replace(cfg, resume_from=str(stopped.run_dir))).fit()
    assert resumed.status == "completed"
    return whole, resumed


def colour_classes(root: Path, per_class: int = 6) -> Path:
    """Class folders ``blue/``, ``green/`` and ``red/`` of plain squares in a few shades; returns ``root``."""
    for c, name in enumerate(["blue", "green", "red"]):
        r, g, b = _PALETTE[c]
        for i in range(per_class):
            shade = 10 * (i % 5)
            write_png(root / name / f"{name}_{i}.png", (r - shade, g - shade, b - shade))
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_clip_dir) -> dict[str, Path]:
    """A full fine-tuning run, a linear-probe run and a Tip-Adapter-F run of the tiny CLIP on three colour classes."""
    # Imported here, as in fixtures_models: a plugin module loads for every test, and the training
    # stack (torch, transformers) only for the tests that ask for a run.
    from clipstudio.engine.training.trainer import Trainer

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:  # session scope: the per-test isolated home is not set up here
        mp.setenv("CLIPSTUDIO_HOME", str(root / "home"))
        mp.setenv("CLIPSTUDIO_CACHE_DIR", str(root / "home" / "cache"))
        data = colour_classes(root / "data")
        common = dict(
            data=DataConfig(path=str(data)), model=ModelConfig(spec=str(tiny_clip_dir), device="cpu")
        )
        full = TrainConfig(**common, output=str(root / "full"), epochs=1, batch_size=6, learning_rate=1e-3,
                           warmup_steps=0, amp=False)  # fmt: skip
        probe = TrainConfig(**common, output=str(root / "probe"), method="linear_probe", epochs=4,
                            batch_size=8, learning_rate=0.2, warmup_steps=0, weight_decay=0.0)  # fmt: skip
        tip = TrainConfig(**common, output=str(root / "tip"), method="tip_adapter_f", epochs=2, batch_size=4,
                          learning_rate=1e-3, warmup_steps=0)  # fmt: skip
        for cfg in (full, probe, tip):
            assert Trainer(cfg).fit().status == "completed"
    return {"data": data, "full": root / "full", "probe": root / "probe", "tip": root / "tip", "start": tiny_clip_dir}
