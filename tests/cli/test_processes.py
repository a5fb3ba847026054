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

from clipstudio.cli.train import StopRequest
from clipstudio.engine.models.torch_model import BF16_INFERENCE_ENV

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
    assert _rounded(ours) == _rounded(theirs)  # metrics, calibration on val, confidence intervals
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()


def _rounded(value: object) -> object:
    """``value`` (JSON) with its floats rounded to 6 places: float rounding may differ, nothing else may."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 6) if isinstance(value, float) else value


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
