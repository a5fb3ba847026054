"""Training on several processes with torchrun and DistributedDataParallel: one process per GPU (or CPU).

torchrun (``torch.distributed.run``) starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK
and the rendezvous address; ``join_process_group`` turns them into a process group (NCCL on Linux
GPUs, gloo on the CPU and on Windows, where NCCL does not exist). Every process then runs the same
Trainer with these differences:

- Data: each epoch's order is the one a single process would use, padded as DistributedSampler
  pads it; each optimizer step's global batch (``batch_size`` images per process) is split by
  stride, and texts and augmentation are drawn for the whole global batch (``batches.py``).
- Loss: image and text features are gathered from every process with their gradients, and each
  process takes the contrastive loss of its own rows against the whole global batch (open_clip's
  ``gather_features`` with ``local_loss``); keys are gathered too, so the multi-positive loss
  knows which gathered items share a class. DistributedDataParallel averages the gradients, so N
  processes with batch B train exactly as one process with batch N x B (up to float rounding).
- Stop: every process polls Stop once per optimizer step, and the answers are combined (any one
  stops all), so all processes stop after the same step and the first process saves once.
- Writing: only the first process (rank 0) writes the run folder and emits events.
- Frozen-embedding methods (linear probe, Tip-Adapter): each process encodes its share of the
  images and all gather them (``encode_image_files_sharded``); every process then solves on the
  same features.

A process that raises ends; torchrun then stops the others and reports the failing process's
one-line error (``record_error``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_gather as all_gather_with_grad  # keeps gradients

from clipstudio.engine.embeddings import EncodedImages, encode_image_files
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.events import ShouldStop
from clipstudio.engine.runtime.device import select_device
from clipstudio.engine.training.losses import contrastive_loss_of_rows

# How long a process waits for the others at a collective before giving up (a rank stuck elsewhere).
_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    """Which process this is among how many; ``Ranks()`` is a single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the process's number on its own machine: its GPU

    @property
    def is_main(self) -> bool:
        """The process that writes the run folder and emits events."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current_ranks() -> Ranks:
    """This process's ranks in the initialised process group; ``Ranks()`` when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def launched_by_torchrun() -> bool:
    """Whether torchrun (or Slurm through it) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def batch_record(batch_size: int, batch_used: int, world_size: int) -> dict[str, int]:
    """run.json's batch entries: the processes and global batch, and the halved batch after a GPU ran out of memory."""
    record = {"processes": world_size, "global_batch_size": batch_size * world_size}
    if batch_used < batch_size:
        record["batch_size_used"] = batch_used
    return record


def resumed_batch_size(batch_size: int, run_info: dict, world_size: int) -> tuple[int, str]:
    """(batch size per process, note) to resume a run with ``world_size`` processes; note "" when unchanged.

    A run resumed with another number of processes keeps its global batch, so that the data order,
    steps per epoch and learning-rate schedule continue exactly: the batch per process is the
    global batch divided by the processes. ConfigError when it does not divide evenly.
    """
    before = int(run_info.get("processes", 1))
    total = int(run_info.get("global_batch_size", batch_size * before))
    if before == world_size:
        return batch_size, ""
    if total % world_size:
        raise ConfigError(
            f"This run trained with a batch of {total} images per step; resume it with a number of "
            f"processes that divides {total}."
        )
    per_process = total // world_size
    return per_process, (
        f"Resuming with {world_size} process(es) instead of {before}: {per_process} images per process "
        f"keep the run's batch of {total} images per step."
    )


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA GPUs on Linux, gloo otherwise (CPU, and Windows, where NCCL does not exist)."""
    if device.type == "cuda" and sys.platform.startswith("linux") and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def join_process_group(device_spec: str, gpu_id: int = 0) -> tuple[Ranks, int]:
    """Join the process group torchrun's environment describes; (ranks, GPU number this process uses).

    Each process on a machine takes its own GPU: ``gpu_id`` + LOCAL_RANK.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = gpu_id + local_rank
    device = select_device(device_spec, gpu_id=gpu)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), timeout=_TIMEOUT)
    return current_ranks(), gpu


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where collective tensors live: the GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class SyncedStop:
    """``should_stop`` for all processes at once: True on every process as soon as it is True on any.

    Each call is a collective: every process must call it at the same points (once per step).
    """

    def __init__(self, local: ShouldStop) -> None:
        self.local = local
        self._stopped = False

    def __call__(self) -> bool:
        if self._stopped:
            return True
        flag = torch.tensor([1.0 if self.local() else 0.0], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._stopped = bool(flag.item())
        return self._stopped


def global_mean(values: Sequence[float]) -> list[float]:
    """The mean over all processes of each value (equal weights: every process has as many images)."""
    tensor = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).tolist()


def gathered_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    keys: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    kind: str,
) -> tuple[torch.Tensor, float]:
    """(loss to backpropagate, accuracy) of the global batch from this process's features and keys.

    The features are gathered with their gradients; the loss is this process's rows against every
    gathered item. Its value is the global batch's loss (the same on every process, so a loss that
    is not finite stops all of them together); its gradient is that of this process's rows, which
    DistributedDataParallel's averaging turns into the global batch's.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    # The autograd-aware all-gather open_clip uses: its backward sums each gathered block's gradient back
    # to its process. (`_functional_collectives.all_gather_single`, used first, returns asynchronous
    # tensors; a resumed two-process CPU run crashed once in CI with heap corruption while using it.)
    all_image = torch.cat(all_gather_with_grad(image.float().contiguous()))
    all_text = torch.cat(all_gather_with_grad(text.float().contiguous()))
    key_parts = [torch.empty_like(keys) for _ in range(world)]
    dist.all_gather(key_parts, keys.contiguous())
    all_keys = torch.cat(key_parts)
    scale = logit_scale.float()
    image_rows = scale * image.float() @ all_text.t()
    text_rows = scale * text.float() @ all_image.t()
    first = rank * image.shape[0]  # equal parts: the global batch is padded to a multiple of the processes
    local = contrastive_loss_of_rows(image_rows, text_rows, keys, all_keys, first=first, kind=kind)
    accuracy = _rows_accuracy(image_rows, keys, all_keys)
    value, accuracy = global_mean([float(local.detach()), accuracy])
    return local + (value - local.detach()), accuracy


def _rows_accuracy(image_rows: torch.Tensor, row_keys: torch.Tensor, keys: torch.Tensor) -> float:
    """``in_batch_accuracy`` of these rows against the whole batch."""
    with torch.no_grad():
        best = image_rows.argmax(dim=1)
        hits = keys.to(best.device)[best] == row_keys.to(best.device)
        return float(hits.float().mean()) if len(best) else 0.0


class TowerForward(nn.Module):
    """Both towers and the temperature as one module's forward, so DistributedDataParallel sees each step.

    frozen: towers ("image", "text") that run without gradients (a locked tower).
    """

    def __init__(self, model, frozen: Sequence[str] = ()) -> None:
        super().__init__()
        self.module = model.torch_module
        self._model = model  # the wrapper (tokenised inputs, pooling); not an nn.Module
        self._frozen = set(frozen)

    def forward(self, pixels: torch.Tensor, tokens: dict[str, torch.Tensor]):
        with torch.no_grad() if "image" in self._frozen else nullcontext():
            image = self._model.forward_images(pixels)
        with torch.no_grad() if "text" in self._frozen else nullcontext():
            text = self._model.forward_texts(tokens)
        return image, text, self._model.logit_scale_tensor()


def data_parallel(model, frozen: Sequence[str], device: torch.device) -> nn.Module:
    """``TowerForward`` in DistributedDataParallel: rank 0's weights are copied to every process now,
    and gradients are averaged in every backward pass."""
    towers = TowerForward(model, frozen)
    return nn.parallel.DistributedDataParallel(
        towers,
        device_ids=[device.index] if device.type == "cuda" else None,
        # Every step uses the same parameters; a static graph finds those a step never uses (a text
        # pooler) in the first step instead of searching every step. BatchNorm statistics are frozen
        # during training, so there are no buffers to broadcast each step.
        static_graph=True,
        forward_sync_buffers=False,
    )


def from_first_process(value: object) -> object:
    """Rank 0's ``value`` on every process (e.g. the run folder, when each process would name its own)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: object) -> list[object]:
    """``value`` from every process, in rank order (picklable objects: embeddings, index lists)."""
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def encode_image_files_sharded(model, paths: list[Path], **options) -> EncodedImages:
    """``encode_image_files`` with each process encoding every world_size-th image, gathered on all.

    The result is the one a single process gets (rows in input order); each process writes its own
    images to the shared embedding cache. Stopped on any process: stopped on all.
    """
    ranks = current_ranks()
    mine = list(range(ranks.rank, len(paths), ranks.world_size))
    encoded = encode_image_files(model, [paths[i] for i in mine], **options)
    part = ([mine[i] for i in encoded.indices], encoded.embeddings, encoded.problems, encoded.cancelled)
    parts = gather_objects(part)
    vectors = {i: row for indices, rows, _, _ in parts for i, row in zip(indices, rows, strict=True)}
    indices = sorted(vectors)
    embeddings = np.stack([vectors[i] for i in indices]) if indices else encoded.embeddings[:0]
    return EncodedImages(
        embeddings=embeddings,
        indices=indices,
        problems=[problem for p in parts for problem in p[2]],
        n_cached=encoded.n_cached,
        n_encoded=encoded.n_encoded,
        cancelled=any(p[3] for p in parts),
    )


def record_error(message: str) -> None:
    """Leave ``message`` where torchrun reports a failed process's error (TORCHELASTIC_ERROR_FILE)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"message": message, "timestamp": int(time.time())}, handle)


__all__ = [
    "Ranks",
    "batch_record",
    "resumed_batch_size",
    "SyncedStop",
    "TowerForward",
    "backend_for",
    "current_ranks",
    "data_parallel",
    "encode_image_files_sharded",
    "from_first_process",
    "gather_objects",
    "gathered_loss",
    "global_mean",
    "join_process_group",
    "launched_by_torchrun",
    "leave_process_group",
    "record_error",
]
