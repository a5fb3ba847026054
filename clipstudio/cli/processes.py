"""``--nproc-per-node`` and its friends: a command run as several processes through torchrun.

``train`` trains one run on N processes. ``embed``, ``zeroshot`` and ``retrieve`` share the
encoding of the images among them; the first process then writes the output and the embedding
cache alone, so the result is the one a single process gives (docs/DISTRIBUTED.md).

    if wants_launch(args):
        return launch(args)                     # here: torchrun runs this command line N times
    with process_group(cfg) as ranks:           # in each of those processes
        encode_together(store, model, paths, cfg, ranks)
    if not ranks.is_main:
        return EXIT_OK
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from clipstudio.cli.args import data_path, non_negative_int, positive_int
from clipstudio.cli.console import ProgressBars, print_error
from clipstudio.engine.data.readers import existing_path
from clipstudio.engine.embeddings import encode_image_files
from clipstudio.engine.errors import ClipStudioError, DataError

if TYPE_CHECKING:
    from clipstudio.engine.config import StudioConfig
    from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
    from clipstudio.engine.training.distributed import Ranks


def add_process_args(p: argparse.ArgumentParser, nproc_help: str) -> None:
    """The torchrun options; ``nproc_help`` says what N processes do for this command."""
    g = p.add_argument_group("several processes (torchrun; see docs/DISTRIBUTED.md)")
    g.add_argument("--nproc-per-node", type=positive_int, metavar="N", help=nproc_help)
    g.add_argument("--nnodes", default="1", metavar="N", help="how many machines take part (default: 1)")
    g.add_argument("--node-rank", type=non_negative_int, default=0, metavar="R",
                   help="this machine's number, 0 to N-1 (default: 0)")
    g.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="where the machines meet: the first machine's address and a free port")


def wants_launch(args: argparse.Namespace) -> bool:
    """``--nproc-per-node`` given here, not in a process torchrun started."""
    from clipstudio.engine.training.distributed import launched_by_torchrun  # deferred: torch

    return bool(args.nproc_per_node) and not launched_by_torchrun()


def launch(args: argparse.Namespace, command: list[str] | None = None, *, data: str | None = None) -> int:
    """Run ``clipstudio COMMAND...`` (default: this command line) as the processes the options ask for.

    ``data`` (default: the command's DATA) is checked first: a mistyped path is one error line, not N
    processes started to find it. Returns the exit code; a failed process's one-line error is printed
    here unless the first process already printed it.
    """
    from clipstudio.engine.training.distributed_launch import INTERRUPTED, run_processes  # deferred: torch

    check_data_path(data or data_path(args))
    outcome = run_processes(
        args.argv if command is None else command,
        nproc_per_node=args.nproc_per_node,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        rdzv_endpoint=args.rdzv_endpoint,
    )
    if outcome.exit_code and outcome.exit_code != INTERRUPTED and not outcome.shown:
        print_error(f"process {outcome.failed_rank} failed: {outcome.message}")
    return outcome.exit_code


def check_data_path(path: str | None) -> None:
    """DataError unless ``path`` (when given) exists and can be read."""
    if not path:
        return
    p = existing_path(path)  # named as the dataset readers name it
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        raise DataError(f"{p}: permission denied")


def print_user_error(message: str) -> None:
    """A user error's one line on stderr. Of several processes only the first prints it; each leaves it
    for the launcher, which repeats another process's error, not the one already on the console."""
    if "TORCHELASTIC_ERROR_FILE" not in os.environ:  # not a process torchrun started
        print_error(message)
        return
    from clipstudio.engine.training import distributed  # deferred: torch (loaded already in such a process)

    first = not distributed.launched_by_torchrun() or os.environ.get("RANK") == "0"
    distributed.record_error(message, shown=first)
    if first:
        print_error(message)


@contextlib.contextmanager
def process_group(cfg: StudioConfig) -> Iterator[Ranks]:
    """In a process torchrun started: join the group, for the body's collective work, and leave it after.

    Each process takes its own GPU (LOCAL_RANK); only the first one prints; an error is left where
    torchrun reports it. Elsewhere: a single process's ``Ranks()``, nothing else.
    """
    from clipstudio.engine.runtime.device import select_device  # deferred: torch
    from clipstudio.engine.training import distributed  # deferred: torch

    if not distributed.launched_by_torchrun():
        yield distributed.Ranks()
        return
    ranks, gpu = distributed.join_process_group(cfg.model.device)
    device = select_device(cfg.model.device, gpu_id=gpu)
    if device.type == "cuda":
        cfg.model.device = str(device)
    finished = False
    try:
        with contextlib.ExitStack() as quiet:
            if not ranks.is_main:  # the others' progress and notices would repeat the first's
                sink = quiet.enter_context(open(os.devnull, "w", encoding="utf-8"))
                quiet.enter_context(contextlib.redirect_stdout(sink))
                quiet.enter_context(contextlib.redirect_stderr(sink))
            yield ranks
        finished = True
    except Exception as exc:
        distributed.record_error(str(exc) if isinstance(exc, ClipStudioError) else repr(exc))
        raise
    finally:
        distributed.leave_process_group(finished)


def image_encoder(ranks: Ranks) -> Callable:
    """``encode_image_files``, or with several processes its shared version whose whole result only the first gets."""
    from clipstudio.engine.training.distributed import encode_image_files_sharded  # deferred: torch

    if not ranks.distributed:
        return encode_image_files
    return functools.partial(encode_image_files_sharded, everywhere=False)


def encode_together(store: EmbeddingStore, model, paths: list, cfg: StudioConfig, ranks: Ranks) -> None:
    """Encode ``paths`` into ``store`` with every process's help (``image_encoder``), with a progress bar.

    The first process's store then holds every image, so the command's own scoring encodes nothing.
    """
    bars = ProgressBars()
    try:
        store.image_embeddings(model, paths, batch_size=cfg.eval.batch_size, callback=bars,
                               encode=image_encoder(ranks))
    finally:
        bars.close()
