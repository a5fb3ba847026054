"""Linear probe: frozen encoders, a class head trained on cached image embeddings.

The head ``W`` (classes x embedding dim) starts as the prompt-ensemble class text embeddings, and
logits are ``logit_scale * normalize(image) @ normalize(W).T`` with the model's own (fixed)
temperature: before the first step the probe *is* zero-shot classification, and training moves
the class vectors from there. Image embeddings come from ``encode_image_files`` through the
on-disk embedding cache (the encoders never change), so an epoch takes seconds. No augmentation:
the embeddings are computed once.

Checkpoints hold only the head (``linear_head.safetensors`` + ``linear_head.json``); the frozen
model is saved once per run folder (``base_model/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.embeddings import encode_image_files, l2_normalise
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, score_embeddings
from clipstudio.engine.events import no_callback
from clipstudio.engine.models.linear_probe_head import load_head, save_head
from clipstudio.engine.runs.layout import BASE_MODEL_DIR
from clipstudio.engine.training.batches import Prefetcher, epoch_order, micro_batches
from clipstudio.engine.training.methods.base import TrainingMethod
from clipstudio.engine.training.optimizer import AmpPolicy

if TYPE_CHECKING:
    from clipstudio.engine.config import TrainConfig
    from clipstudio.engine.data.dataset import Dataset, Problem
    from clipstudio.engine.events import Callback, ShouldStop
    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.prompts import PromptSet


@dataclass
class ProbeSplit:
    """The frozen model's embeddings of one split's readable images."""

    x: np.ndarray  # (N, D) L2-normalised image embeddings
    y: np.ndarray  # (N,) class indices
    indices: list[int]  # dataset indices of the images that could be read

    @classmethod
    def empty(cls, dim: int) -> ProbeSplit:
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), [])


@dataclass
class ProbeEmbeddings:
    """What ``encode_probe_splits`` gives: both splits, the unreadable images, and whether it was stopped."""

    train: ProbeSplit
    val: ProbeSplit
    problems: list[Problem]
    cancelled: bool


def encode_probe_splits(
    model: ImageTextModel,
    dataset: Dataset,
    train_indices: list[int],
    val_indices: list[int],
    *,
    batch_size: int,
    num_workers: int,
    callback: Callback,
    should_stop: ShouldStop,
) -> ProbeEmbeddings:
    """Embed the training and validation images with the frozen model, through the on-disk cache."""
    cache = EmbeddingCache()
    problems: list[Problem] = []
    splits = []
    cancelled = False
    for indices in (train_indices, val_indices):
        if not indices or cancelled:
            splits.append(ProbeSplit.empty(model.embed_dim))
            continue
        encoded = encode_image_files(
            model,
            [dataset.samples[i].path for i in indices],
            cache=cache,
            batch_size=batch_size,
            callback=callback,
            should_stop=should_stop,
            num_workers=num_workers,
        )
        cancelled |= encoded.cancelled
        problems += encoded.problems
        kept = [indices[i] for i in encoded.indices]
        labels = np.array([dataset.samples[i].label for i in kept], dtype=np.int64)
        splits.append(ProbeSplit(l2_normalise(encoded.embeddings), labels, kept))
    return ProbeEmbeddings(splits[0], splits[1], problems, cancelled)


class LinearProbeMethod(TrainingMethod):
    """Trains a (C, D) head on frozen, cached image embeddings."""

    min_batch_size = 1

    def __init__(
        self,
        cfg: TrainConfig,
        model: ImageTextModel,
        class_names: Sequence[str],
        train: ProbeSplit,
        val: ProbeSplit,
        prompts: PromptSet,
        *,
        notes: Sequence[str] = (),
    ) -> None:
        # One small matmul: mixed precision has nothing to gain.
        super().__init__(amp=AmpPolicy(model.device.type, None, False), notes=notes)
        if not len(train.x):
            raise DataError("None of the training images could be read.")
        self.cfg, self.model, self.prompts = cfg, model, prompts
        self.class_names = list(class_names)
        for param in model.torch_module.parameters():
            param.requires_grad_(False)
        self.train_x, self.train_y, self.train_indices = train.x, train.y, train.indices
        self.val_x, self.val_y, self.val_indices = val.x, val.y, val.indices
        device = model.device
        init = class_text_embeddings(model, self.class_names, prompts)
        self.initial_head = init
        self.head = torch.nn.Parameter(torch.from_numpy(init).to(device))
        self.logit_scale = float(model.logit_scale)
        self._train_x = torch.from_numpy(self.train_x).to(device)
        self._train_y = torch.from_numpy(self.train_y).to(device)

    @property
    def n_train(self) -> int:
        return len(self.train_x)

    @property
    def n_val(self) -> int:
        return len(self.val_x)

    @property
    def used_train(self) -> list[int]:
        return list(self.train_indices)

    @property
    def used_val(self) -> list[int]:
        return list(self.val_indices)

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [("linear_head.weight", self.head)]

    def set_train_mode(self) -> None:
        self.model.torch_module.eval()

    @property
    def micro_batches_per_epoch(self) -> int:
        return len(micro_batches(np.arange(self.n_train), self.cfg.batch_size))

    def batches(self, epoch: int, start: int) -> Prefetcher:
        plan = micro_batches(epoch_order(self.cfg.seed, epoch, self.n_train), self.cfg.batch_size)
        return Prefetcher(lambda k: torch.from_numpy(plan[k]).to(self._train_x.device), start, len(plan))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * x @ F.normalize(self.head, dim=-1).t()

    def split_batch(self, rows: torch.Tensor, size: int) -> list[torch.Tensor]:
        return list(rows.split(size))

    def images_in(self, rows: torch.Tensor) -> int:
        return len(rows)

    def step_loss(self, rows: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        logits = self.logits(self._train_x[rows])
        labels = self._train_y[rows]
        loss = F.cross_entropy(logits, labels)
        acc = float((logits.argmax(dim=1) == labels).float().mean())
        return loss, acc, len(rows)

    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        if not self.n_val:
            return {}
        if should_stop():
            return None
        weight = F.normalize(self.head.detach(), dim=-1).cpu().numpy()
        result = score_embeddings(
            self.val_x,
            self.val_y,
            weight,
            self.class_names,
            logit_scale=self.logit_scale,
            n_bootstrap=0,
            with_predictions=False,
        )
        with torch.no_grad():
            x = torch.from_numpy(self.val_x).to(self.head.device)
            y = torch.from_numpy(self.val_y).to(self.head.device)
            loss = float(F.cross_entropy(self.logits(x), y))
        return {
            "val_loss": loss,
            "val_acc": float(result.accuracy),
            "val_balanced_acc": float(result.balanced_accuracy),
        }

    def save_model(self, folder: Path) -> None:
        save_head(folder, self.head, self.class_names, self.logit_scale)

    def save_run_files(self, run_dir: Path) -> None:
        """The frozen model, once per run folder (a temp folder renamed into place: never half written)."""
        target = run_dir / BASE_MODEL_DIR
        if target.is_dir():
            return
        tmp = run_dir / f"{BASE_MODEL_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save(tmp)
        tmp.replace(target)

    def load_weights(self, checkpoint: Path) -> None:
        weight, names, _ = load_head(checkpoint)
        if names != self.class_names:
            raise ConfigError(
                f"{checkpoint}: its classes {names} differ from this dataset's {self.class_names}."
            )
        with torch.no_grad():
            self.head.copy_(weight.to(self.head.device))
