"""Commands as several processes: ``embed``, ``zeroshot`` and ``retrieve --nproc-per-node 2``, and Stop.

The promise: the same output as one process, and the embedding cache filled once (by the first
process). Run as real subprocesses under torchrun (CPU, gloo), as on a user's machine. And the
app's Stop on Windows (Ctrl+Break to the process group) stops training as Ctrl+C does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from clipstudio.cli.processes import print_user_error
from clipstudio.cli.train import StopRequest
from clipstudio.engine.models.torch_model import BF16_INFERENCE_ENV
from clipstudio.engine.training import distributed_launch

_TIMEOUT_S = 240


def _processes(*argv: object) -> subprocess.CompletedProcess:
    """``clipstudio ARGV --nproc-per-node 2`` as a subprocess (the cache folder comes from the test's environment)."""
    command = [sys.executable, "-m", "clipstudio", *(str(a) for a in argv), "--device", "cpu", "--nproc-per-node", "2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture(autouse=True)
def float32_inference(monkeypatch) -> None:
    """The model's encoding in float32 here and in the processes (they inherit it): bf16, the default
    on this CPU, rounds to 3 significant digits, too coarse for comparing at 1e-5."""
    monkeypatch.setenv(BF16_INFERENCE_ENV, "0")


@pytest.fixture
def class_data(tmp_path, make_class_folders):
    """13 images (an odd number, so the processes' shares differ) and one file that is not an image."""
    data = make_class_folders(tmp_path / "classes", {"red": 5, "green": 4, "blue": 4})
    (data / "green" / "green_broken.png").write_bytes(b"not a picture")
    return data


@pytest.mark.slow  # two processes, twice
def test_embed_with_two_processes_writes_what_one_process_writes(cli, class_data, tiny_clip_dir, tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    code, _, err = cli("embed", class_data, "--model", tiny_clip_dir, "--device", "cpu", "--output", one,
                       "--no-cache")
    assert code == 0, err

    first = _processes("embed", class_data, "--model", tiny_clip_dir, "--output", two, "--json", "-")
    again = _processes("embed", class_data, "--model", tiny_clip_dir, "--output", two, "--json", "-")

    ours, theirs = _npz(two), _npz(one)
    assert ours["paths"].tolist() == theirs["paths"].tolist() and len(ours["paths"]) == 13
    assert ours["skipped"].tolist() == theirs["skipped"].tolist() == [str(class_data / "green" / "green_broken.png")]
    np.testing.assert_allclose(ours["image_embeddings"], theirs["image_embeddings"], atol=1e-5)
    summaries = [json.loads(proc.stdout) for proc in (first, again)]
    assert [(s["n_cached"], s["n_encoded"]) for s in summaries] == [(0, 13), (13, 0)]  # the first process cached all
    assert first.stdout.count('"output"') == 1  # one summary: only the first process reports


@pytest.mark.slow  # two processes
def test_zeroshot_with_two_processes_scores_like_one_process(cli, make_class_folders, tiny_clip_dir, tmp_path):
    # The test images are scored; the calibration is fitted on the val images (both encoded by the processes).
    data = make_class_folders(tmp_path / "splits", {"train": {"red": 2, "blue": 2},
                                                     "val": {"red": 3, "blue": 2}, "test": {"red": 4, "blue": 3}})
    common = ("zeroshot", data, "--model", tiny_clip_dir, "--json", "-")
    code, out, err = cli(*common, "--device", "cpu", "--predictions", tmp_path / "one.csv")
    assert code == 0, err

    proc = _processes(*common, "--predictions", tmp_path / "two.csv")

    ours, theirs = json.loads(proc.stdout), json.loads(out)
    _assert_close(ours, theirs)  # metrics, calibration on val, confidence intervals
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()


def _assert_close(ours: object, theirs: object, where: str = "") -> None:
    """The same JSON, floats within 1e-6: float rounding may differ (rounding both to 6 places was not
    enough: 0.7251415 and 0.7251414 round apart), nothing else may."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), where
        for key in theirs:
            _assert_close(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, abs=1e-6), where
    else:
        assert ours == theirs, where


@pytest.mark.slow  # two processes
def test_retrieve_with_two_processes_scores_like_one_process(cli, make_clip_finetune, tiny_clip_dir, tmp_path):
    pairs = make_clip_finetune(tmp_path / "pairs", {"train": 4, "val": 7})
    common = ("retrieve", pairs, "--model", tiny_clip_dir, "--json", "-")
    code, out, err = cli(*common, "--device", "cpu")
    assert code == 0, err

    proc = _processes(*common)

    ours, theirs = json.loads(proc.stdout), json.loads(out)
    assert ours["n"] == theirs["n"] == 7
    for key in ("image_to_text", "text_to_image", "mean_rank", "median_rank"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key


def test_a_missing_data_folder_is_one_error_line_and_starts_no_process(cli, monkeypatch, tmp_path):
    def no_processes(*args, **kwargs):
        raise AssertionError("processes were started")

    monkeypatch.setattr(distributed_launch, "run_processes", no_processes)
    missing = tmp_path / "nonexistent"
    code, _, err = cli("zeroshot", missing, "--model", "builtin", "--nproc-per-node", "2")
    assert code == 2
    assert err.splitlines() == [f"clipstudio: error: {missing} does not exist."]


@pytest.mark.slow  # two processes
def test_an_error_every_process_meets_is_printed_once(make_class_folders, tiny_clip_dir, tmp_path):
    one_class = make_class_folders(tmp_path / "one", {"red": 3})
    command = [sys.executable, "-m", "clipstudio", "zeroshot", str(one_class), "--model", str(tiny_clip_dir),
               "--device", "cpu", "--nproc-per-node", "2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("clipstudio: error:")]
    assert len(errors) == 1 and "1 class folder" in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize(("rank", "printed"), [("0", True), ("1", False)])
def test_of_several_processes_only_the_first_prints_a_user_error(monkeypatch, tmp_path, capsys, rank, printed):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    print_user_error("bad labels")
    assert capsys.readouterr().err == ("clipstudio: error: bad labels\n" if printed else "")
    recorded = json.loads(error_file.read_text())  # for the launcher, which repeats it only when not printed
    assert recorded["message"] == "bad labels" and recorded["shown"] is printed


def _failure(tmp_path, rank: int, exitcode: int, message: str | None, shown: bool = False):
    """A failed process as torchrun's agent reports it, from the error file the process left (or none)."""
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    error_file = tmp_path / f"error_{rank}.json"
    if message is not None:
        error_file.write_text(json.dumps({"message": message, "timestamp": rank, "shown": shown}))
    return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(error_file))


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        # The first process printed its error: nothing to repeat.
        ([(0, 2, "bad labels", True), (1, 2, "bad labels", False)], []),
        # Another process's error, not on the console: the launcher names it.
        ([(1, 2, "it could not read its images", False)], ["process 1 failed: it could not read its images"]),
        # Killed by a signal: no process could print anything (torchrun words the signal).
        ([(1, -9, None)], ["process 1 failed: ", "SIGKILL"]),
    ],
)
def test_the_launcher_repeats_only_an_error_no_process_printed(cli, monkeypatch, tmp_path, failures, expected):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    def failing_run(_args):
        raise ChildFailedError("clipstudio", {f[0]: _failure(tmp_path, *f) for f in failures})

    monkeypatch.setattr("torch.distributed.run.run", failing_run)
    code, _, err = cli("embed", tmp_path, "--model", "builtin", "--output", tmp_path / "e.npz",
                       "--nproc-per-node", "2")
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == (1 if expected else 0)
    if expected:
        assert lines[0].startswith(f"clipstudio: error: {expected[0]}") and all(e in lines[0] for e in expected)


def test_ctrl_break_stops_training_as_ctrl_c_does(monkeypatch):
    # SIGBREAK exists only on Windows, where the app's Stop sends Ctrl+Break; a spare signal stands in.
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    with StopRequest(announce=False) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGUSR1)
        assert stop()  # stop after the current step and save
        with pytest.raises(KeyboardInterrupt):  # a second one aborts, as a second Ctrl+C does
            signal.raise_signal(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before  # both handlers are put back
