"""Tip-Adapter and Tip-Adapter-F: zero-shot logits plus a key-value cache of the training images.

Tip-Adapter (Zhang et al., ECCV 2022) adds to the zero-shot logits ``s * f @ W.T`` a cache term
``alpha * exp(-beta * (1 - f @ F.T)) @ L``: ``F`` the training images' L2-normalised embeddings
(the keys), ``L`` their one-hot classes (the values). Nothing is trained (``tip_adapter``: one
epoch, which builds the cache); ``alpha`` (how much the cache counts) and ``beta`` (how sharply it
prefers the nearest training images) are chosen on the validation images by a grid search
(``ALPHAS`` x ``BETAS``, the best balanced accuracy, ties to the lower validation loss). ``alpha``
= 0 is in the grid: on validation the method is never worse than zero-shot.

Tip-Adapter-F (``tip_adapter_f``) also trains the keys, from the training embeddings, with AdamW on
the cross-entropy of the blended logits of the training images (the paper: learning rate 1e-3, 20
epochs), keys used as they are (not renormalised, as in the paper); ``alpha`` and ``beta`` are
fixed during training at the training-free search's values, and searched again after each epoch.
Unlike the paper, a training image's own cache entry is left out of its training logits
(leave-one-out): otherwise every image finds itself in the cache at affinity 1, the loss is about 0
from the first step and the keys hardly move (the paper's augmented views hide this). Measured on
the built-in model, 480 training images (test balanced accuracy / macro AUC): with its own entry
Tip-Adapter-F equalled Tip-Adapter (PneumoniaMNIST 0.830 / 0.878, BloodMNIST 0.610 / 0.874); left
out, 0.833 / 0.930 and 0.673 / 0.912.

Both use the frozen model's cached image embeddings (``encode_probe_splits``), so an epoch takes
seconds; no augmentation (the paper averages augmented views into its keys). Checkpoints hold only
the cache (``models.tip_adapter_head``); the frozen model is saved once per run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings
from clipstudio.engine.events import no_callback
from clipstudio.engine.models.tip_adapter_head import TipAdapterCache, load_cache, save_cache
from clipstudio.engine.training.batches import Prefetcher, epoch_order, micro_batches
from clipstudio.engine.training.methods.base import EpochFit
from clipstudio.engine.training.methods.linear_probe import FrozenEmbeddingMethod, ProbeSplit
from clipstudio.engine.training.optimizer import AmpPolicy

if TYPE_CHECKING:
    from clipstudio.engine.config import TrainConfig
    from clipstudio.engine.events import Callback, ShouldStop
    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.prompts import PromptSet

# The search grid. alpha: 0 (zero-shot) and log-spaced 0.01..1000 (the paper's ~0.1..10, wider because
# the cache term sums over every training image of a class, hundreds with MedMNIST-sized data, and
# because a weak zero-shot head is best outvoted: 1000 is the cache alone; measured: the built-in
# model on the BloodMNIST subset picks 562).
# beta: log-spaced 0.5..64 (the paper's 1..7, wider because some models' image embeddings are all
# close to each other, so their affinities need a sharper beta to tell neighbours apart).
ALPHAS = np.concatenate([[0.0], np.geomspace(1e-2, 1e3, 21)])
BETAS = np.geomspace(0.5, 64.0, 15)
# Without validation images: the paper's ImageNet setting.
DEFAULT_ALPHA, DEFAULT_BETA = 1.0, 5.5


@dataclass(frozen=True)
class Choice:
    """The (alpha, beta) the search picked and the validation metrics there."""

    alpha: float
    beta: float
    loss: float
    accuracy: float
    balanced_accuracy: float


def _metrics(logits: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    """(cross-entropy, accuracy, balanced accuracy over the classes present) of (N, C) logits."""
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = float(np.mean(log_z - logits[np.arange(len(y)), y]))
    hit = logits.argmax(axis=1) == y
    support = np.bincount(y, minlength=n_classes)
    recall = np.bincount(y, weights=hit, minlength=n_classes)[support > 0] / support[support > 0]
    return loss, float(hit.mean()), float(recall.mean())


def search_alpha_beta(cache: TipAdapterCache, x: np.ndarray, y: np.ndarray) -> Choice:
    """The grid point with the best balanced accuracy on (``x`` unit embeddings, ``y``), ties to the lower loss."""
    x = np.asarray(x, dtype=np.float64)
    n_classes = cache.values.shape[1]
    zero_shot = cache.zero_shot_logits(x)
    loss, acc, bacc = _metrics(zero_shot, y, n_classes)
    best = Choice(0.0, float(BETAS[0]), loss, acc, bacc)
    for beta in BETAS:
        cached = cache.cache_logits(x, float(beta))
        for alpha in ALPHAS[1:]:
            loss, acc, bacc = _metrics(zero_shot + alpha * cached, y, n_classes)
            if (bacc, -loss) > (best.balanced_accuracy, -best.loss):
                best = Choice(float(alpha), float(beta), loss, acc, bacc)
    return best


class TipAdapterMethod(FrozenEmbeddingMethod):
    """Tip-Adapter: builds the cache from the training embeddings and picks alpha and beta on validation."""

    full_batch = True
    fixed_epochs = 1  # nothing trains: one epoch builds the cache

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
        reason = "the cache is computed in full precision on the CPU"
        super().__init__(cfg, model, class_names, train, val, amp_reason=reason, notes=notes)
        text = class_text_embeddings(model, self.class_names, prompts)
        values = np.eye(len(self.class_names), dtype=np.float32)[train.y]
        self.cache = TipAdapterCache(
            keys=train.x.astype(np.float32),
            values=values,
            text_rows=text,
            scale=float(model.logit_scale),
            alpha=DEFAULT_ALPHA if not len(val.x) else 0.0,  # with validation images, the search sets it
            beta=DEFAULT_BETA,
        )
        self.keys = torch.nn.Parameter(torch.from_numpy(train.x.astype(np.float32).copy()))
        self.built = False  # before the cache is built, the method classifies as zero-shot
        self._choice: Choice | None = None  # a search not yet reported by ``evaluate``

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [("tip_adapter.keys", self.keys)]

    def current_cache(self) -> TipAdapterCache:
        return replace(self.cache, keys=self.keys.detach().numpy().copy())

    def _size_note(self) -> str:
        megabytes = self.keys.numel() * 4 / 1e6
        return f"a cache of {self.n_train} training images ({megabytes:.1f} MB per checkpoint)"

    def solve_epoch(self, epoch: int, should_stop: ShouldStop) -> EpochFit | None:
        if should_stop():
            return None
        self.built = True
        if self.n_val:
            self._choice = self._search()
        loss, acc, _ = _metrics(self.current_cache().logits(self.train.x), self.train.y, len(self.class_names))
        how = "alpha and beta are chosen on the validation images" if self.n_val else (
            f"no validation images, so alpha {DEFAULT_ALPHA:g} and beta {DEFAULT_BETA:g} (the paper's)"
        )
        note = f"Tip-Adapter: {self._size_note()}; {how}."
        return EpochFit(loss=loss, accuracy=acc, images=self.n_train, value=0.0, note=note)

    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        if not self.n_val:
            return {}
        if should_stop():
            return None
        if self.built:
            choice, self._choice = self._choice or self._search(), None
            metrics = (choice.loss, choice.accuracy, choice.balanced_accuracy)
        else:
            metrics = _metrics(self.cache.zero_shot_logits(self.val.x.astype(np.float64)), self.val.y,
                               len(self.class_names))
        return {"val_loss": metrics[0], "val_acc": metrics[1], "val_balanced_acc": metrics[2]}

    def _search(self) -> Choice:
        """Choose alpha and beta on the validation images for the current keys."""
        choice = search_alpha_beta(self.current_cache(), self.val.x, self.val.y)
        self.cache = replace(self.cache, alpha=choice.alpha, beta=choice.beta)
        return choice

    def save_model(self, folder: Path) -> None:
        save_cache(folder, self.current_cache(), self.class_names, self.state_json())

    def state_json(self) -> dict:
        return {}

    def load_weights(self, checkpoint: Path) -> None:
        cache, names, info = load_cache(checkpoint)
        if names != self.class_names or cache.keys.shape != tuple(self.keys.shape):
            raise ConfigError(f"{checkpoint}: its cache does not fit this dataset's classes and training images.")
        with torch.no_grad():
            self.keys.copy_(torch.from_numpy(cache.keys))
        self.cache = replace(self.cache, alpha=cache.alpha, beta=cache.beta)
        self.built = True
        self.restore_state(info)

    def restore_state(self, info: dict) -> None:
        """Anything beyond the cache that ``state_json`` saved."""


class TipAdapterFMethod(TipAdapterMethod):
    """Tip-Adapter-F: also trains the cache keys (AdamW on the blended logits' cross-entropy)."""

    full_batch = False
    fixed_epochs = None
    tune_threads = False  # a step is one small matrix product: milliseconds

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.amp = AmpPolicy("cpu", None, False, "the cache keys train in full precision on the CPU")
        self.built = True  # epoch 0 validates the training-free cache: its alpha and beta train the keys
        self.train_alpha, self.train_beta = DEFAULT_ALPHA, DEFAULT_BETA
        self.train_fixed = False  # set by the first validation: the training-free search's alpha and beta
        self._x = torch.from_numpy(self.train.x.astype(np.float32))
        self._y = torch.from_numpy(self.train.y)
        self._text = torch.from_numpy(self.cache.text_rows.astype(np.float32))
        self._values = torch.from_numpy(self.cache.values)

    @property
    def micro_batches_per_epoch(self) -> int:
        return len(micro_batches(np.arange(self.n_train), self.cfg.batch_size))

    def batches(self, epoch: int, start: int) -> Prefetcher:
        order = micro_batches(epoch_order(self.cfg.seed, epoch, self.n_train), self.cfg.batch_size)
        return Prefetcher(lambda k: order[k], start, len(order))

    def split_batch(self, batch: np.ndarray, size: int) -> list[np.ndarray]:
        return [batch[i : i + size] for i in range(0, len(batch), size)]

    def images_in(self, batch: np.ndarray) -> int:
        return len(batch)

    def step_loss(self, batch: np.ndarray) -> tuple[torch.Tensor, float, int]:
        index = torch.from_numpy(np.asarray(batch, dtype=np.int64))
        x, y = self._x[index], self._y[index]
        affinity = torch.exp(-self.train_beta * (1.0 - x @ self.keys.t()))
        # Leave-one-out: an image's own key is not a neighbour of it (see the module docstring).
        affinity = affinity.index_put((torch.arange(len(index)), index), torch.zeros(len(index)))
        logits = self.cache.scale * (x @ self._text.t()) + self.train_alpha * (affinity @ self._values)
        loss = F.cross_entropy(logits, y)
        acc = float((logits.detach().argmax(dim=1) == y).float().mean())
        return loss, acc, len(batch)

    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        metrics = super().evaluate(should_stop, progress)
        if metrics and not self.train_fixed:
            # The training-free search's alpha and beta train the keys (the paper's "init" values);
            # where the cache did not help (alpha 0) the paper's defaults do, or the keys would not move.
            if self.cache.alpha > 0.0:
                self.train_alpha, self.train_beta = self.cache.alpha, self.cache.beta
            self.train_fixed = True
        return metrics

    def state_json(self) -> dict:
        return {"train_alpha": self.train_alpha, "train_beta": self.train_beta}

    def restore_state(self, info: dict) -> None:
        self.train_fixed = True
        self.train_alpha = float(info.get("train_alpha", DEFAULT_ALPHA))
        self.train_beta = float(info.get("train_beta", DEFAULT_BETA))
