"""Start one training run as several processes through torchrun (``torch.distributed.run``).

    outcome = launch_processes(cfg, nproc_per_node=2)                       # this machine
    outcome = launch_processes(cfg, nproc_per_node=8, nnodes=2, node_rank=0, rdzv_endpoint="host:29400")

The config is written to a temporary file and each process runs ``python -m clipstudio train
--config FILE`` under torchrun's agent, which watches them: when one fails it stops the others,
and Ctrl+C is passed to every process once (they stop after the same step; the first saves). The
run folder is fixed here, so every process and machine names the same one. torchrun's own log
lines are silenced unless LOGLEVEL is set (e.g. LOGLEVEL=INFO to debug a rendezvous).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clipstudio.engine.config import TrainConfig, save_config
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import default_run_dir

INTERRUPTED = 130  # the exit code of a process that Ctrl+C / Stop cancelled


@dataclass(frozen=True)
class ProcessesOutcome:
    """How a multi-process run ended: the exit code (0, 130 cancelled, else failed) and, on failure, why."""

    exit_code: int
    failed_rank: int | None = None
    message: str = ""


def torchrun_arguments(
    config_file: Path,
    *,
    nproc_per_node: int,
    nnodes: str = "1",
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """torchrun's command line for the run: standalone on one machine, else a c10d rendezvous at the endpoint."""
    argv = ["--nproc-per-node", str(nproc_per_node), "--nnodes", str(nnodes)]
    if rdzv_endpoint:
        argv += [
            "--node-rank", str(node_rank),
            "--rdzv-backend", "c10d",
            "--rdzv-endpoint", rdzv_endpoint,
            "--rdzv-id", "clipstudio",
        ]
    elif str(nnodes) != "1":
        raise ConfigError("Training on several machines needs --rdzv-endpoint HOST:PORT (the first machine's).")
    else:
        argv.append("--standalone")
    return [*argv, "-m", "clipstudio", "train", "--config", str(config_file)]


def launch_processes(
    cfg: TrainConfig,
    *,
    nproc_per_node: int,
    nnodes: str = "1",
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> ProcessesOutcome:
    """Run ``cfg`` as ``nproc_per_node`` processes here (of ``nnodes`` machines) and wait for them."""
    # torch's launcher takes seconds to import: only multi-process runs pay for it.
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if "LOGLEVEL" not in os.environ:  # torchrun's own notices; its LOGLEVEL setting brings them back
        for name in ("torch.distributed.run", "torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if cfg.cv.use_cv:
        raise ConfigError("Cross-validation trains one fold at a time; run it without --nproc-per-node.")
    if not cfg.output:
        cfg.output = str(default_run_dir(cfg.method))
    with tempfile.TemporaryDirectory(prefix="clipstudio-processes-") as folder:
        config_file = Path(folder) / "config.json"
        save_config(cfg, config_file)
        argv = torchrun_arguments(
            config_file,
            nproc_per_node=nproc_per_node,
            nnodes=nnodes,
            node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint,
        )
        try:
            run(parse_args(argv))
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            if failure.exitcode == INTERRUPTED:
                return ProcessesOutcome(INTERRUPTED)
            message = failure.message if isinstance(failure.message, str) else ""
            return ProcessesOutcome(failure.exitcode or 1, rank, message or _exit_text(failure))
        except SignalException:
            return ProcessesOutcome(INTERRUPTED)
    return ProcessesOutcome(0)


def _exit_text(failure) -> str:
    if failure.exitcode < 0:
        return f"it was stopped by signal {failure.signal_name()}"
    return f"it exited with code {failure.exitcode}"


__all__ = ["INTERRUPTED", "ProcessesOutcome", "launch_processes", "torchrun_arguments"]
