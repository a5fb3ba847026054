"""Linear probe: frozen encoders, a logistic-regression class head on cached image embeddings.

As the CLIP paper does it: multinomial logistic regression on the frozen model's L2-normalised
image embeddings, with a bias per class and free row lengths (so a free scale), fitted exactly by
a full-batch L-BFGS solve, the L2 strength chosen on validation. Each epoch is one point of a
regularisation path, from strong to weak (``path_strengths``), warm-started from the previous
point; validation balanced accuracy after each epoch and ``checkpoint_best`` pick the strength, and
early stopping ends the path when weaker regularisation stops helping. (Validation log-loss, a 1-SE
rule and 5-fold cross-validation on the training images were measured as the choice on the five
MedMNIST subsets and were not better: docs/ADAPTATION.md.)

The penalty pulls the head towards a prior: ``"text"``, the zero-shot head (the prompt ensemble's
text embeddings times the model's logit scale), so a strong penalty *is* zero-shot classification
and few images move it little; ``"none"``, towards zero, which is scikit-learn's
``LogisticRegression`` (C = 1 / (strength x training images); with two classes its binary fit, see
``row_strength``); ``"auto"`` (default), ``"text"`` only where the prompts clearly beat chance on
the validation images (``chance_margin``). The head starts as the zero-shot head, so epoch 0's
validation is zero-shot's.

Image embeddings come from ``encode_image_files`` through the on-disk embedding cache (the
encoders never change), so a solve takes seconds. No augmentation: the embeddings are computed once.

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
from clipstudio.engine.class_weights import ClassWeights
from clipstudio.engine.embeddings import encode_image_files, l2_normalise
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, score_embeddings
from clipstudio.engine.events import never_stop, no_callback
from clipstudio.engine.models.linear_probe_head import load_head, save_head
from clipstudio.engine.runs.layout import BASE_MODEL_DIR
from clipstudio.engine.training.distributed import current_ranks, encode_image_files_sharded
from clipstudio.engine.training.methods.base import EpochFit, TrainingMethod
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
        encode = encode_image_files_sharded if current_ranks().distributed else encode_image_files
        encoded = encode(
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


# The regularisation path: L2 strengths from STRONGEST to WEAKEST, log-spaced over the epochs.
STRONGEST = 1.0
WEAKEST = 1e-6
SINGLE = 1e-4  # a one-epoch run: one solve at a middling strength
_MAX_ITERATIONS = 500  # L-BFGS iterations per solve (scikit-learn's default is 100)
_CHUNK = 25  # iterations between checks of Stop
_TOLERANCE = 1e-5  # largest gradient entry of the mean loss at a solution (scikit-learn's default: 1e-4)
# Below this many multiply-adds per loss (images x dims x classes) the solve runs on one thread: OpenMP
# threads that meet at a barrier every millisecond were 20x slower than one thread with another
# program busy on a core (480 x 1280 x 5: 36 ms vs 1.6 ms per loss and gradient, this machine).
_ONE_THREAD_BELOW = 50_000_000


def path_strengths(epochs: int) -> np.ndarray:
    """The L2 strength of each epoch, strong to weak, log-spaced (one epoch: ``SINGLE``)."""
    if epochs <= 1:
        return np.array([SINGLE])
    return np.geomspace(STRONGEST, WEAKEST, epochs)


def probe_objective(
    weight: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    prior: torch.Tensor,
    strength: float,
) -> torch.Tensor:
    """Mean cross-entropy + strength/2 * ||weight - prior||^2; the bias is not penalised."""
    return F.cross_entropy(x @ weight.t() + bias, y) + 0.5 * strength * (weight - prior).pow(2).sum()


def row_strength(strength: float, classes: int) -> float:
    """The penalty on the weight rows that regularises as ``strength`` does in scikit-learn's fit.

    With two classes scikit-learn fits binary logistic regression: one row d (the logit of class 1
    against class 0), penalised strength/2 * ||d||^2. A two-row softmax with both rows penalised
    settles at rows -d/2 and +d/2 (around the prior's), whose penalty strength/2 * 2 * ||d/2||^2 is
    half that: the same strength would regularise half as much, and the path's grid would not be
    scikit-learn's. Doubling it for two classes makes the two fits the same.
    """
    return 2.0 * strength if classes == 2 else strength


def solve_probe(
    weight: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    prior: torch.Tensor,
    strength: float,
    should_stop: ShouldStop = never_stop,
) -> bool:
    """Minimise ``probe_objective`` over ``weight`` and ``bias`` in place (L-BFGS), penalised as
    ``strength`` is in scikit-learn's logistic regression (``row_strength``); False when stopped."""
    penalty = row_strength(strength, weight.shape[0])
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=_CHUNK,
        history_size=20,
        tolerance_grad=_TOLERANCE,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = probe_objective(weight, bias, x, y, prior, penalty)
        loss.backward()
        return loss

    state = optimizer.state[weight]  # LBFGS keeps its iteration count with the first parameter
    threads = torch.get_num_threads()
    if x.shape[0] * x.shape[1] * weight.shape[0] < _ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        done = 0
        while done < _MAX_ITERATIONS:
            if should_stop():
                return False
            before = state.get("n_iter", 0)
            optimizer.step(closure)
            ran = state.get("n_iter", 0) - before
            done += _CHUNK
            if ran < _CHUNK:  # converged (gradient or change below tolerance) inside this chunk
                break
    finally:
        torch.set_num_threads(threads)
    return True


def chance_margin(labels: np.ndarray, classes: int) -> float:
    """The balanced accuracy that guessing reaches on these validation labels only 5% of the time.

    Chance (1 / classes) plus 1.645 standard errors of a guesser's balanced accuracy, the mean over the
    classes of a recall estimated on that class's images. Prompts that score barely above chance on a
    hundred images (BreastMNIST: 0.51 with chance 0.50, test 0.48) are noise, and leaning on them cost
    0.04 balanced accuracy there.
    """
    chance = 1.0 / classes
    counts = np.bincount(labels, minlength=classes)
    counts = counts[counts > 0]
    spread = np.sqrt(np.sum(chance * (1.0 - chance) / counts)) / len(counts)
    return float(chance + 1.645 * spread)


def save_base_model(model: ImageTextModel, run_dir: Path) -> None:
    """The frozen model, once per run folder (a temp folder renamed into place: never half written)."""
    target = run_dir / BASE_MODEL_DIR
    if target.is_dir():
        return
    tmp = run_dir / f"{BASE_MODEL_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    tmp.replace(target)


class FrozenEmbeddingMethod(TrainingMethod):
    """What the methods on the frozen model's cached image embeddings share (the probe, Tip-Adapter).

    The encoders never train; the run folder holds them once (``base_model/``); the heads train on
    the CPU (``amp_reason`` says how, for the log).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: ImageTextModel,
        class_names: Sequence[str],
        train: ProbeSplit,
        val: ProbeSplit,
        *,
        amp_reason: str,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__(amp=AmpPolicy("cpu", None, False, amp_reason), notes=notes)
        if not len(train.x):
            raise DataError("None of the training images could be read.")
        self.cfg, self.model = cfg, model
        self.class_names = list(class_names)
        for param in model.torch_module.parameters():
            param.requires_grad_(False)
        self.train, self.val = train, val

    @property
    def n_train(self) -> int:
        return len(self.train.x)

    @property
    def n_val(self) -> int:
        return len(self.val.x)

    @property
    def used_train(self) -> list[int]:
        return list(self.train.indices)

    @property
    def used_val(self) -> list[int]:
        return list(self.val.indices)

    @property
    def micro_batches_per_epoch(self) -> int:
        return 1  # the whole training set at once

    def set_train_mode(self) -> None:
        self.model.torch_module.eval()

    def save_run_files(self, run_dir: Path) -> None:
        save_base_model(self.model, run_dir)


class LinearProbeMethod(FrozenEmbeddingMethod):
    """Fits a (C, D) + (C,) logistic-regression head on frozen, cached image embeddings."""

    full_batch = True

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
        # Full-batch float64 solves on the CPU: exact, and seconds even for 12,000 images.
        reason = "the probe's head is solved in double precision on the CPU"
        super().__init__(cfg, model, class_names, train, val, amp_reason=reason, notes=notes)
        text = class_text_embeddings(model, self.class_names, prompts)
        zero_shot = torch.from_numpy(float(model.logit_scale) * text.astype(np.float64))
        self.prior_name, self.prior_reason = self._choose_prior(cfg.probe.prior, text, float(model.logit_scale))
        self.prior = zero_shot if self.prior_name == "text" else torch.zeros_like(zero_shot)
        self.weight = torch.nn.Parameter(zero_shot.clone())
        self.bias = torch.nn.Parameter(torch.zeros(len(self.class_names), dtype=torch.float64))
        self.strengths = path_strengths(cfg.epochs)
        self._train_x = torch.from_numpy(train.x.astype(np.float64))
        self._train_y = torch.from_numpy(train.y)

    def _choose_prior(self, wanted: str, text: np.ndarray, scale: float) -> tuple[str, str]:
        """("text" or "none", why): "auto" leans on the prompts only where they clearly beat chance on validation."""
        if wanted != "auto":
            return wanted, "as set"
        if not len(self.val.x):
            return "text", "auto: no validation images to check the prompts on"
        result = score_embeddings(
            self.val.x, self.val.y, text, self.class_names, logit_scale=scale, n_bootstrap=0, with_predictions=False
        )
        chance = 1.0 / len(self.class_names)
        needed = chance_margin(self.val.y, len(self.class_names))
        score = f"{result.balanced_accuracy:.2f} balanced accuracy on validation, chance {chance:.2f}"
        if result.balanced_accuracy > needed:
            return "text", f"auto: the prompts score {score}"
        return "none", (
            f"auto: the prompts score only {score} ({needed:.2f} would show they do better than guessing on "
            f"{len(self.val.y)} images), so the probe does not lean on them"
        )

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [("linear_head.weight", self.weight), ("linear_head.bias", self.bias)]

    def strength(self, epoch: int) -> float:
        return float(self.strengths[min(epoch, len(self.strengths)) - 1])

    def solve_epoch(self, epoch: int, should_stop: ShouldStop) -> EpochFit | None:
        strength = self.strength(epoch)
        x, y = self._train_x, self._train_y
        if not solve_probe(self.weight, self.bias, x, y, self.prior, strength, should_stop):
            return None
        with torch.no_grad():
            logits = x @ self.weight.t() + self.bias
            loss = float(F.cross_entropy(logits, y))
            acc = float((logits.argmax(dim=1) == y).double().mean())
        where = f"{epoch} of {len(self.strengths)}" if len(self.strengths) > 1 else "a single solve"
        prior = "the zero-shot head" if self.prior_name == "text" else "zero"
        note = f"Linear probe: L2 strength {strength:.1e} towards {prior} ({where})."
        if epoch == 1:
            note += f" The penalty pulls towards {prior} ({self.prior_reason})."
        return EpochFit(loss=loss, accuracy=acc, images=self.n_train, value=strength, note=note)

    def head(self) -> ClassWeights:
        return ClassWeights.affine(self.weight.detach().numpy(), self.bias.detach().numpy())

    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        if not self.n_val:
            return {}
        if should_stop():
            return None
        head = self.head()
        result = score_embeddings(
            self.val.x,
            self.val.y,
            head.rows,
            self.class_names,
            logit_scale=head.scale,
            class_bias=head.bias,
            n_bootstrap=0,
            with_predictions=False,
        )
        with torch.no_grad():
            x = torch.from_numpy(self.val.x.astype(np.float64))
            logits = x @ self.weight.t() + self.bias
            loss = float(F.cross_entropy(logits, torch.from_numpy(self.val.y)))
        return {
            "val_loss": loss,
            "val_acc": float(result.accuracy),
            "val_balanced_acc": float(result.balanced_accuracy),
        }

    def save_model(self, folder: Path) -> None:
        save_head(folder, self.weight, self.bias, self.class_names)

    def load_weights(self, checkpoint: Path) -> None:
        head, names = load_head(checkpoint)
        if names != self.class_names:
            raise ConfigError(
                f"{checkpoint}: its classes {names} differ from this dataset's {self.class_names}."
            )
        head = head.as_affine()
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(head.rows.astype(np.float64)))
            self.bias.copy_(torch.from_numpy(head.bias.astype(np.float64)))
