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

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.storage.atomic import atomic_write_json
from clipstudio.engine.embeddings import EmbeddingCache, encode_image_files, l2_normalise
from clipstudio.engine.errors import ConfigError, DataError, ModelError
from clipstudio.engine.evaluation.zero_shot import zero_shot_from_embeddings
from clipstudio.engine.prompts import class_text_embeddings
from clipstudio.engine.storage.safetensors_io import save_safetensors
from clipstudio.engine.training.batches import Prefetcher, epoch_order, micro_batches

if TYPE_CHECKING:
    from clipstudio.engine.config import TrainConfig
    from clipstudio.engine.data.dataset import Dataset, Problem
    from clipstudio.engine.events import Callback, ShouldStop
    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.prompts import PromptSet

HEAD_WEIGHTS = "linear_head.safetensors"
HEAD_INFO = "linear_head.json"
BASE_MODEL_DIR = "base_model"


def save_head(folder: Path, weight: torch.Tensor, class_names: list[str], logit_scale: float) -> None:
    tensor = weight.detach().float().cpu().contiguous().clone()
    save_safetensors({"weight": tensor}, folder / HEAD_WEIGHTS)
    atomic_write_json(
        folder / HEAD_INFO, {"class_names": list(class_names), "logit_scale": float(logit_scale)}
    )


def load_head(folder: Path) -> tuple[torch.Tensor, list[str], float]:
    """(weight (C, D), class names, logit scale) from a linear-probe checkpoint."""
    try:
        info = json.loads((folder / HEAD_INFO).read_text(encoding="utf-8"))
        weight = load_file(str(folder / HEAD_WEIGHTS))["weight"]
        names = [str(n) for n in info["class_names"]]
        scale = float(info["logit_scale"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: the linear-probe head can't be read ({exc}).") from None
    if weight.ndim != 2 or weight.shape[0] != len(names):
        raise ModelError(f"{folder}: the linear-probe head does not match its class names.")
    return weight, names, scale


class LinearProbeMethod:
    """Trains a (C, D) head on frozen, cached image embeddings."""

    use_amp = False  # one small matmul: nothing to gain
    min_batch_size = 1

    def __init__(
        self,
        cfg: TrainConfig,
        model: ImageTextModel,
        dataset: Dataset,
        train_indices: list[int],
        val_indices: list[int],
        prompts: PromptSet,
        *,
        callback: Callback,
        should_stop: ShouldStop,
    ) -> None:
        if not dataset.is_classification:
            raise ConfigError(
                "The linear probe needs class data (class folders or labelled images); "
                "for image-text pairs use 'full', 'lock_image' or 'lora'."
            )
        self.cfg, self.model, self.prompts = cfg, model, prompts
        self.class_names = list(dataset.class_names)
        for param in model.torch_module.parameters():
            param.requires_grad_(False)
        self.problems: list[Problem] = []
        self.cancelled = False
        cache = EmbeddingCache()
        self.train_x, self.train_y, self.train_indices = self._encode(
            dataset, train_indices, cache, callback, should_stop
        )
        self.val_x, self.val_y, self.val_indices = self._encode(
            dataset, val_indices, cache, callback, should_stop
        )
        if not self.cancelled and not len(self.train_x):
            raise DataError("None of the training images could be read.")
        device = model.device
        init = class_text_embeddings(model, self.class_names, prompts)
        self.initial_head = init
        self.head = torch.nn.Parameter(torch.from_numpy(init).to(device))
        self.logit_scale = float(model.logit_scale)
        self._train_x = torch.from_numpy(self.train_x).to(device)
        self._train_y = torch.from_numpy(self.train_y).to(device)

    def _encode(self, dataset, indices, cache, callback, should_stop):
        if not indices or self.cancelled:
            return np.zeros((0, self.model.embed_dim), np.float32), np.zeros(0, np.int64), []
        encoded = encode_image_files(
            self.model,
            [dataset.samples[i].path for i in indices],
            cache=cache,
            batch_size=max(self.cfg.batch_size, 64),
            callback=callback,
            should_stop=should_stop,
            num_workers=self.cfg.num_workers,
        )
        self.cancelled |= encoded.cancelled
        self.problems += encoded.problems
        kept = [indices[i] for i in encoded.indices]
        labels = np.array([dataset.samples[i].label for i in kept], dtype=np.int64)
        return l2_normalise(encoded.embeddings), labels, kept

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

    def evaluate(self, should_stop) -> dict[str, float] | None:
        if not self.n_val:
            return {}
        if should_stop():
            return None
        weight = F.normalize(self.head.detach(), dim=-1).cpu().numpy()
        result = zero_shot_from_embeddings(
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

    def save_base_model(self, run_dir: Path) -> None:
        """The frozen model, once per run folder (a temp folder renamed into place: never half written)."""
        target = run_dir / BASE_MODEL_DIR
        if target.is_dir():
            return
        tmp = run_dir / f"{BASE_MODEL_DIR}.tmp"
        import shutil

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

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
