"""Start one training run, or one embedding command, as several processes through torchrun.

    with config_command(cfg) as command:                                     # a training run
        outcome = run_processes(command, nproc_per_node=2)                   # this machine
    outcome = run_processes(["embed", DATA, "--model", M, "--output", F],    # several machines
                            nproc_per_node=8, nnodes=2, node_rank=0, rdzv_endpoint="host:29400")

For training the config is written to a temporary file and each process runs ``python -m
clipstudio train --config FILE``; other commands run their own command line again in each
process. torchrun's agent watches the processes: when one fails it stops the others, and Ctrl+C
is passed to every process once (they stop after the same step; the first saves). torchrun's
own log lines are silenced unless LOGLEVEL is set (e.g. LOGLEVEL=INFO to debug a rendezvous).

On Windows the app's Stop sends Ctrl+Break to the whole process group. torchrun starts the
processes in the launcher's group there, so each gets it and stops as on Ctrl+C; the launcher
itself ignores it and waits for them to save (by default Ctrl+Break would end it at once).
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clipstudio.engine.config import TrainConfig, save_config
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import default_run_dir

INTERRUPTED = 130  # the exit code of a process that Ctrl+C / Stop cancelled


@dataclass(frozen=True)
class ProcessesOutcome:
    """How a multi-process run ended: the exit code (0, 130 cancelled, else failed) and, on failure, why,
    and whether a process already printed that as its error line (the launcher then need not repeat it)."""

    exit_code: int
    failed_rank: int | None = None
    message: str = ""
    shown: bool = False


def torchrun_arguments(
    command: Sequence[str],
    *,
    nproc_per_node: int,
    nnodes: str = "1",
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """torchrun's command line for ``clipstudio COMMAND...``: standalone on one machine, else a c10d
    rendezvous at the endpoint."""
    argv = ["--nproc-per-node", str(nproc_per_node), "--nnodes", str(nnodes)]
    if rdzv_endpoint:
        argv += [
            "--node-rank", str(node_rank),
            "--rdzv-backend", "c10d",
            "--rdzv-endpoint", rdzv_endpoint,
            "--rdzv-id", "clipstudio",
        ]
    elif str(nnodes) != "1":
        raise ConfigError("Several machines need --rdzv-endpoint HOST:PORT (the first machine's).")
    else:
        argv.append("--standalone")
    return [*argv, "-m", "clipstudio", *command]


@contextmanager
def config_command(cfg: TrainConfig) -> Iterator[list[str]]:
    """``train --config FILE``, FILE holding ``cfg`` while the body runs it as several processes.

    The run folder is named here, so that every process and machine names the same one.
    """
    if cfg.cv.use_cv:
        raise ConfigError("Cross-validation trains one fold at a time; run it without --nproc-per-node.")
    if not cfg.output:
        cfg.output = str(default_run_dir(cfg.method))
    with tempfile.TemporaryDirectory(prefix="clipstudio-processes-") as folder:
        config_file = Path(folder) / "config.json"
        save_config(cfg, config_file)
        yield ["train", "--config", str(config_file)]


def run_processes(
    command: Sequence[str],
    *,
    nproc_per_node: int,
    nnodes: str = "1",
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> ProcessesOutcome:
    """Run ``clipstudio COMMAND...`` as ``nproc_per_node`` processes here (of ``nnodes`` machines); wait for them."""
    # torch's launcher takes seconds to import: only multi-process runs pay for it.
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if "LOGLEVEL" not in os.environ:  # torchrun's own notices; its LOGLEVEL setting brings them back
        for name in ("torch.distributed.run", "torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    argv = torchrun_arguments(
        command, nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint
    )
    try:
        with ctrl_break_left_to_workers():
            run(parse_args(argv))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode == INTERRUPTED:
            return ProcessesOutcome(INTERRUPTED)
        message = failure.message if isinstance(failure.message, str) else ""
        # Another process may have failed with the same error and printed it (the first process prints).
        shown = bool(message) and any(
            _printed(other) and other.message == message for other in exc.failures.values()
        )
        return ProcessesOutcome(failure.exitcode or 1, rank, message or _exit_text(failure), shown)
    except SignalException:
        return ProcessesOutcome(INTERRUPTED)
    return ProcessesOutcome(0)


@contextmanager
def ctrl_break_left_to_workers() -> Iterator[None]:
    """Windows: the launcher ignores Ctrl+Break (SIGBREAK), which its processes take as Stop; elsewhere nothing."""
    ctrl_break = getattr(signal, "SIGBREAK", None)
    if ctrl_break is None:
        yield
        return
    previous = signal.signal(ctrl_break, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(ctrl_break, previous)


def _printed(failure) -> bool:
    """The process printed its error line itself (``distributed.record_error(..., shown=True)``)."""
    data = failure.error_file_data
    return isinstance(data, dict) and data.get("shown") is True


def _exit_text(failure) -> str:
    if failure.exitcode < 0:
        return f"it was stopped by signal {failure.signal_name()}"
    return f"it exited with code {failure.exitcode}"


__all__ = [
    "INTERRUPTED",
    "ProcessesOutcome",
    "config_command",
    "ctrl_break_left_to_workers",
    "run_processes",
    "torchrun_arguments",
]
