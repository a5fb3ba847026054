"""The contract between the Trainer and a training method.

The Trainer owns the loop (optimizer, learning-rate schedule, loss scaling, gradient accumulation,
checkpoints, events); a method owns what differs: which parameters train, the batches of an
epoch, the loss of a batch, the validation metrics and the weights a checkpoint holds. A method
is complete when its constructor returns (``setup.build_method`` builds one).

Most methods train with optimizer steps on batches (``batches``, ``step_loss``...). A method with
``full_batch`` set instead fits each epoch in one exact solve of its own (``solve_epoch``; the
linear probe's L-BFGS): the Trainer counts it as one step and keeps the rest of the contract
(validation, checkpoints, early stopping, resume, events).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from clipstudio.engine.events import Callback, ShouldStop, no_callback
from clipstudio.engine.training.batches import Prefetcher
from clipstudio.engine.training.optimizer import AmpPolicy


@dataclass(frozen=True)
class EpochFit:
    """What a full-batch epoch gives: training loss and accuracy at the solution, and how it was solved."""

    loss: float
    accuracy: float
    images: int
    value: float  # the epoch's setting, plotted and logged in place of the learning rate (the probe: L2 strength)
    note: str  # a line for the user's log


class TrainingMethod(ABC):
    """A way of fine-tuning a model, as the Trainer drives it.

    amp: the mixed-precision policy of ``step_loss``'s forward pass.
    notes: warnings for the user's log (e.g. how many images could not be read).
    """

    #: The smallest batch a GPU out-of-memory retry may halve a batch down to.
    min_batch_size: ClassVar[int] = 1
    #: Each epoch is one exact solve (``solve_epoch``), not optimizer steps on batches.
    full_batch: ClassVar[bool] = False
    #: A training-free method fits in this many epochs, whatever ``cfg.epochs`` says (None: cfg.epochs).
    fixed_epochs: ClassVar[int | None] = None
    #: Whether the CPU thread count is tuned to the step speed; steps of a few milliseconds are too noisy to time.
    tune_threads: ClassVar[bool] = True

    def __init__(self, *, amp: AmpPolicy, notes: Sequence[str] = ()) -> None:
        self.amp = amp
        self.notes = list(notes)

    # --- the data it trains and validates on --------------------------------------------------------
    @property
    @abstractmethod
    def n_train(self) -> int:
        """Training images (those that could be read)."""

    @property
    @abstractmethod
    def n_val(self) -> int:
        """Validation images; 0 means no validation."""

    @property
    @abstractmethod
    def used_train(self) -> list[int]:
        """Dataset indices of the training images actually used (splits.json)."""

    @property
    @abstractmethod
    def used_val(self) -> list[int]:
        """Dataset indices of the validation images actually used (splits.json)."""

    @property
    @abstractmethod
    def micro_batches_per_epoch(self) -> int:
        """Batches of ``cfg.batch_size`` images in one epoch."""

    # --- training ----------------------------------------------------------------------------------
    @abstractmethod
    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        """(name, parameter) of everything the optimizer updates."""

    @property
    def interruptible_module(self) -> torch.nn.Module | None:
        """The module whose layers may abandon a step on Stop (``training.interrupt``); None: steps are short."""
        return None

    @abstractmethod
    def set_train_mode(self) -> None:
        """Put the model in the mode training steps run in."""

    # Methods that train with optimizer steps implement these four; full-batch methods, ``solve_epoch``.
    def batches(self, epoch: int, start: int) -> Prefetcher:
        """(index, batch) for the epoch's batches from ``start`` on, in a deterministic order."""
        raise NotImplementedError(f"{type(self).__name__} fits whole epochs (solve_epoch), not batches")

    def split_batch(self, batch: Any, size: int) -> list[Any]:
        """``batch`` in parts of at most ``size`` images (a GPU out-of-memory retry)."""
        raise NotImplementedError(f"{type(self).__name__} fits whole epochs (solve_epoch), not batches")

    def images_in(self, batch: Any) -> int:
        """How many images ``batch`` holds."""
        raise NotImplementedError(f"{type(self).__name__} fits whole epochs (solve_epoch), not batches")

    def step_loss(self, batch: Any) -> tuple[torch.Tensor, float, int]:
        """(loss to backpropagate, training accuracy, images) of one batch."""
        raise NotImplementedError(f"{type(self).__name__} fits whole epochs (solve_epoch), not batches")

    def solve_epoch(self, epoch: int, should_stop: ShouldStop) -> EpochFit | None:
        """Fit epoch ``epoch`` (1-based) exactly; None when ``should_stop`` interrupted it (``full_batch`` methods)."""
        raise NotImplementedError(f"{type(self).__name__} trains with optimizer steps on batches")

    @abstractmethod
    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        """Validation metrics ({} without validation images); None when ``should_stop`` interrupted them.

        Methods that encode images to validate report it to ``progress`` as ProgressUpdated events
        (stage ``events.VALIDATE_STAGE``), so a slow CPU validation shows its count and ETA.
        """

    # --- checkpoints -------------------------------------------------------------------------------
    @abstractmethod
    def save_model(self, folder: Path) -> None:
        """Write the trained weights into a checkpoint folder."""

    @abstractmethod
    def load_weights(self, checkpoint: Path) -> None:
        """Continue from the weights ``save_model`` wrote."""

    @abstractmethod
    def save_run_files(self, run_dir: Path) -> None:
        """Write what the run folder needs once, besides its checkpoints."""


__all__ = ["EpochFit", "TrainingMethod"]
