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
- Validation (contrastive methods): each process embeds its block of the validation images, and
  all gather the rows (``gather_rows``; padding dropped, so no image counts twice); every process
  then scores the same embeddings, as one process would.
- Frozen-embedding methods (linear probe, Tip-Adapter): each process encodes its share of the
  images and all gather them (``encode_image_files_sharded``; only the first process reads and
  writes the embedding cache); every process then solves on the same features. ``embed``,
  ``zeroshot`` and ``retrieve`` share their image encoding the same way.
- BatchNorm: no method trains BatchNorm statistics (the contrastive methods keep every BatchNorm
  layer in eval mode; the others train no image weights), so SyncBatchNorm is not needed.

A process that raises ends; torchrun then stops the others and reports the failing process's
one-line error (``record_error``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import warnings
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

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.data.dataset import Problem
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


def leave_process_group(finished: bool = True) -> None:
    """Tear the process group down; ``finished``: this process ended normally (not with an error).

    First the garbage collector runs: a Trainer left in a reference cycle still holds its
    DistributedDataParallel wrapper, and with it the group; freed later, during interpreter shutdown,
    gloo's worker threads were destroyed while still joinable and the process aborted ("terminate
    called without an active exception", seen in CI). After a normal end every process then waits for
    the others, so none closes its connections while another still uses them; after an error it
    doesn't wait (the others may never arrive; torchrun stops them).
    """
    if not dist.is_initialized():
        return
    gc.collect()
    if finished:
        dist.barrier()
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
    all_image = _gather_with_grad(image)
    all_text = _gather_with_grad(text)
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


def _gather_with_grad(features: torch.Tensor) -> torch.Tensor:
    """Every process's ``features``, concatenated, with the autograd-aware all-gather open_clip uses:
    its backward sums each gathered block's gradient back to its process.

    torch 2.13 marks it deprecated in favour of ``_functional_collectives.all_gather_single``, which
    returns asynchronous tensors; that warning would reach users' consoles once per run, so it is
    silenced here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
        return torch.cat(all_gather_with_grad(features.float().contiguous()))


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


def encode_image_files_sharded(
    model, paths: list[Path], *, cache: EmbeddingCache | None = None, everywhere: bool = True, **options
) -> EncodedImages:
    """``encode_image_files`` with the work shared among the processes; the same result, rows in input order.

    Only the first process uses ``cache``: it looks up the images it already holds, every process
    encodes every world_size-th of the others, and the first process stores what they encoded (one
    writer, and the cache may be a file on the first machine only). ``everywhere``: every process
    gets the whole result (training: all solve on the same features); False: only the first does,
    and the others get their own share (a command whose first process writes the output).
    Stopped on any process: stopped on all. ``options``: as ``encode_image_files`` takes them.
    """
    ranks = current_ranks()
    paths = [Path(p) for p in paths]
    fingerprint = model.image_fingerprint() if cache is not None else ""
    hits: dict[int, np.ndarray] = {}
    if ranks.is_main and cache is not None:
        # A vector of the wrong width can only come from a damaged cache: encode it again.
        found = cache.get_many(fingerprint, paths)
        hits = {i: v for i, v in found.items() if v.shape == (model.embed_dim,)}
    cached = set(from_first_process(sorted(hits)))
    mine = [i for i in range(len(paths)) if i not in cached][ranks.rank :: ranks.world_size]
    encoded = encode_image_files(model, [paths[i] for i in mine], **options)
    part = _SharedPart([mine[i] for i in encoded.indices], encoded.embeddings, encoded.problems,
                       encoded.n_encoded, encoded.cancelled)
    parts = gather_objects(part) if everywhere else _gather_on_first(part)
    if parts is None:  # not the first process, and only the first needs the whole result
        parts = [part]
    new = {i: row for p in parts for i, row in zip(p.indices, p.embeddings, strict=True)}
    if ranks.is_main and cache is not None and new:
        cache.put_many(fingerprint, [paths[i] for i in new], np.stack(list(new.values())))
    if everywhere and cache is not None:
        hits = from_first_process(hits)  # the others need the first process's cached vectors too
    vectors = hits | new
    indices = sorted(vectors)
    embeddings = np.stack([vectors[i] for i in indices]) if indices else encoded.embeddings[:0]
    position = {str(path): i for i, path in enumerate(paths)}
    problems = sorted((problem for p in parts for problem in p.problems), key=lambda pr: position.get(pr.path, 0))
    return EncodedImages(
        embeddings=embeddings,
        indices=indices,
        problems=problems,
        n_cached=len(hits),
        n_encoded=sum(p.n_encoded for p in parts),
        cancelled=any(p.cancelled for p in parts),
    )


@dataclass(frozen=True)
class _SharedPart:
    """One process's share of ``encode_image_files_sharded``: input positions and their rows."""

    indices: list[int]
    embeddings: np.ndarray
    problems: list[Problem]
    n_encoded: int
    cancelled: bool


def _gather_on_first(value: object) -> list[object] | None:
    """``value`` from every process, in rank order, on the first process; None on the others."""
    gathered: list[object] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def rows_of_this_process(n: int) -> range:
    """This process's block of ``n`` rows (the validation images): ceil(n / processes) rows, the last fewer.

    Blocks follow each other in rank order, so ``gather_rows`` puts the rows back in order.
    """
    ranks = current_ranks()
    per = -(-n // ranks.world_size)
    return range(min(n, ranks.rank * per), min(n, (ranks.rank + 1) * per))


def gather_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """All ``n`` rows on every process, in order, from each process's ``rows_of_this_process`` block.

    The blocks are padded to one length for the all-gather and the padding is dropped again, so
    no row counts twice (unlike a padded DistributedSampler's, which would count some twice).
    """
    world = dist.get_world_size()
    per = -(-n // world)
    device = _collective_device()
    block = torch.zeros((per, rows.shape[1]), dtype=torch.float32, device=device)
    block[: len(rows)] = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).to(device)
    blocks = [torch.empty_like(block) for _ in range(world)]
    dist.all_gather(blocks, block)
    return torch.cat(blocks)[:n].cpu().numpy()


def record_error(message: str, *, shown: bool = False) -> None:
    """Leave ``message`` where torchrun reports a failed process's error (TORCHELASTIC_ERROR_FILE).

    ``shown``: this process also printed it as its one error line, so the launcher need not repeat it.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"message": message, "timestamp": int(time.time()), "shown": shown}, handle)


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
    "gather_rows",
    "gathered_loss",
    "global_mean",
    "join_process_group",
    "launched_by_torchrun",
    "leave_process_group",
    "record_error",
    "rows_of_this_process",
]
