"""The contract between the Trainer and a training method.

The Trainer owns the loop (optimizer, learning-rate schedule, loss scaling, gradient accumulation,
checkpoints, events); a method owns what differs: which parameters train, the batches of an
epoch, the loss of a batch, the validation metrics and the weights a checkpoint holds. A method
is complete when its constructor returns (``setup.build_method`` builds one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from clipstudio.engine.events import Callback, ShouldStop, no_callback
from clipstudio.engine.training.batches import Prefetcher
from clipstudio.engine.training.optimizer import AmpPolicy


class TrainingMethod(ABC):
    """A way of fine-tuning a model, as the Trainer drives it.

    amp: the mixed-precision policy of ``step_loss``'s forward pass.
    notes: warnings for the user's log (e.g. how many images could not be read).
    """

    #: The smallest batch a GPU out-of-memory retry may halve a batch down to.
    min_batch_size: ClassVar[int] = 1

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

    @abstractmethod
    def batches(self, epoch: int, start: int) -> Prefetcher:
        """(index, batch) for the epoch's batches from ``start`` on, in a deterministic order."""

    @abstractmethod
    def split_batch(self, batch: Any, size: int) -> list[Any]:
        """``batch`` in parts of at most ``size`` images (a GPU out-of-memory retry)."""

    @abstractmethod
    def images_in(self, batch: Any) -> int:
        """How many images ``batch`` holds."""

    @abstractmethod
    def step_loss(self, batch: Any) -> tuple[torch.Tensor, float, int]:
        """(loss to backpropagate, training accuracy, images) of one batch."""

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


__all__ = ["TrainingMethod"]
