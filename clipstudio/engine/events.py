"""Engine -> UI events: small frozen dataclasses of plain values, and the Callback protocol.

The engine takes ``callback`` (any callable accepting an event) and ``should_stop``
(a no-argument callable); the CLI turns events into progress bars, the GUI into signals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class TrainingStatus(StrEnum):
    """How a training run ended. The values are what run folders and summaries record."""

    COMPLETED = "completed"  # every epoch trained
    EARLY_STOPPED = "early_stopped"  # the monitored metric stopped improving
    CANCELLED = "cancelled"  # should_stop asked; checkpoint_latest is saved and can be resumed
    FAILED = "failed"  # a non-finite loss or an error; the last good checkpoint is kept

    @property
    def finished(self) -> bool:
        """Whether training ran to its planned end (completed or stopped early)."""
        return self in (TrainingStatus.COMPLETED, TrainingStatus.EARLY_STOPPED)


VALIDATE_STAGE = "validate images"  # ProgressUpdated.stage while a training method scores its validation images
DOWNLOAD_STAGE = "download"  # ProgressUpdated.stage while a model downloads: done and total are bytes


@dataclass(frozen=True)
class ProgressUpdated:
    """``done`` of ``total`` units of ``stage`` are finished (e.g. stage="encode images")."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class MessageLogged:
    """A line for the user's log pane / stderr. Never contains caption text or image contents."""

    level: str  # "info" | "warning"
    text: str


# --- Training (emitted by clipstudio.engine.training.trainer.Trainer, in this order) ----------------------


@dataclass(frozen=True)
class MethodChosen:
    """Method "auto" picked a training method from the training data (before TrainStarted)."""

    method: str  # one of config.TRAIN_METHODS
    reason: str  # one or two plain sentences for the user


@dataclass(frozen=True)
class TrainStarted:
    """Data and model are ready; the first optimizer step is next."""

    run_dir: str
    method: str  # TrainConfig.method
    epochs: int
    steps_per_epoch: int  # optimizer steps
    total_steps: int
    n_train: int  # training images
    n_val: int  # validation images (0: no validation)
    device: str  # e.g. "cuda:0", "cpu"
    start_epoch: int = 1  # > 1 when resuming
    start_step: int = 0  # optimizer steps already done (resume)
    precision: str = ""  # AmpPolicy.description, e.g. "full precision (fp32) — this CPU has no bf16 units, ..."


@dataclass(frozen=True)
class StepEnded:
    """An optimizer step finished. Throttled: every ``log_every_steps`` steps and at most ~10 per second."""

    epoch: int  # 1-based
    step: int  # optimizer steps done so far in the whole run
    total_steps: int
    loss: float  # mean training loss of the batches since the previous StepEnded
    lr: float
    images_per_s: float


@dataclass(frozen=True)
class EpochEnded:
    """An epoch (training + validation) finished. A metric is None where it does not apply."""

    epoch: int
    train_loss: float
    train_acc: float  # in-batch: the image's most similar text is one of its positives
    val_loss: float | None
    val_acc: float | None  # accuracy (class data) or image->text R@1 (pairs)
    val_balanced_acc: float | None  # class data only
    val_mean_recall: float | None  # pairs only: mean of R@1/5/10 in both directions
    lr: float
    seconds: float  # wall time of the epoch

    def val_metrics(self) -> dict[str, float]:
        """The validation metrics this epoch has, keyed as in ``EvalEnded`` (val_loss, val_acc, ...), in that order."""
        metrics = {
            "val_loss": self.val_loss,
            "val_acc": self.val_acc,
            "val_balanced_acc": self.val_balanced_acc,
            "val_mean_recall": self.val_mean_recall,
        }
        return {key: value for key, value in metrics.items() if value is not None}


@dataclass(frozen=True)
class EvalEnded:
    """Validation metrics (epoch 0: before any training, i.e. the starting model)."""

    epoch: int
    metrics: tuple[tuple[str, float], ...]  # (name, value) pairs, e.g. ("val_acc", 0.8)

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    kind: str  # "latest" | "best"
    epoch: int
    step: int


@dataclass(frozen=True)
class TrainEnded:
    """Always the last event of a run, whatever happened."""

    status: TrainingStatus
    run_dir: str
    best_metric: float | None  # best value of the monitored metric (None: no validation)
    message: str  # one sentence for the user


class Callback(Protocol):
    def __call__(self, event: object) -> None: ...


def epoch_setting(method: str, value: float) -> str:
    """The epoch's setting beside its losses: the learning rate, or the linear probe's L2 penalty strength."""
    if method == "tip_adapter":
        return "nothing trained"
    return f"L2 strength {value:.1e}" if method == "linear_probe" else f"lr {value:.2e}"


def no_callback(event: object) -> None:
    """The default callback: drop every event."""


def never_stop() -> bool:
    return False


ShouldStop = Callable[[], bool]
