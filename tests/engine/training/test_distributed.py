"""Training on several processes (torchrun / DistributedDataParallel), on the CPU with gloo.

The promise: N processes with batch B train exactly as one process with batch N x B (same losses,
same weights up to float rounding), resume across process counts, and stop together.
Processes are spawned with torch.multiprocessing on a free local port, and always joined with a
deadline so a broken collective fails the test instead of hanging it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.models import load_model
from clipstudio.engine.models.image_preprocessing import ImageInputSpec
from clipstudio.engine.models.torch_model import BF16_INFERENCE_ENV
from clipstudio.engine.runs.layout import LATEST, find_checkpoint, read_run_info
from clipstudio.engine.training.augment import BatchTransform
from clipstudio.engine.training.batches import (
    ImageSplit,
    TextPool,
    TrainingTexts,
    global_batches,
    make_batch,
    micro_batches,
    padded_order,
    rank_part,
)
from clipstudio.engine.training.distributed import (
    gathered_loss,
    join_process_group,
    leave_process_group,
    resumed_batch_size,
)
from clipstudio.engine.training.distributed_launch import (
    config_command,
    ctrl_break_left_to_workers,
    torchrun_arguments,
)
from clipstudio.engine.training.losses import contrastive_loss, contrastive_loss_of_rows
from clipstudio.engine.training.trainer import Trainer

_DEADLINE_S = 300


# --- helpers: spawn processes that fail fast ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, target, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    join_process_group("cpu")
    finished = False
    try:
        target(*args)
        finished = True
    finally:
        leave_process_group(finished)


def run_processes(target, *args, world: int = 2) -> None:
    """``target(*args)`` in ``world`` processes of one gloo group; re-raises the first failure."""
    context = mp.start_processes(
        _entry, args=(world, _free_port(), target, args), nprocs=world, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + _DEADLINE_S
    try:
        while not context.join(timeout=1.0):  # raises as soon as one process fails, ending the others
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {world} processes did not finish within {_DEADLINE_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(10)


def _train(cfgs: list) -> None:
    for cfg in cfgs:
        Trainer(cfg).fit()


def _train_and_stop_after(cfg, steps: int) -> None:
    trainer = Trainer(cfg, should_stop=lambda: trainer.steps_done >= steps)
    trainer.fit()


def _losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    folder = find_checkpoint(run, LATEST)
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.rglob("*.safetensors")):
        tensors |= {f"{file.name}:{k}": v for k, v in load_file(str(file)).items()}
    return tensors


def _validation(run: Path) -> dict[str, list[float]]:
    history = json.loads((run / "history.json").read_text())
    return {key: history[key] for key in history["val_keys"]}


def assert_same_training(run: Path, reference: Path) -> None:
    """Same losses, validation metrics and weights (up to float rounding)."""
    assert _losses(run) == pytest.approx(_losses(reference), abs=1e-5)
    ours, theirs = _validation(run), _validation(reference)
    assert ours.keys() == theirs.keys()
    for key, values in theirs.items():
        assert ours[key] == pytest.approx(values, abs=1e-5), key
    ours, theirs = _weights(run), _weights(reference)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, atol=1e-5, rtol=0, msg=key)


# --- one process: the shards and the loss of rows ---------------------------------------------------------------
def test_global_batches_hold_what_one_process_with_the_whole_batch_sees():
    order = np.random.default_rng(0).permutation(12)
    single = micro_batches(order, 8)
    shared = global_batches(order, 4, world=2)
    assert [sorted(b) for b in shared] == [sorted(b) for b in single]
    parts = [[rank_part(b, r, 2) for b in shared] for r in range(2)]
    assert [len(p) for p in parts[0]] == [len(p) for p in parts[1]] == [4, 2]


def test_an_odd_epoch_is_padded_from_its_start_like_distributed_sampler():
    order = np.array([5, 3, 0, 1, 4, 2, 6])
    assert padded_order(order, 2).tolist() == [5, 3, 0, 1, 4, 2, 6, 5]
    assert padded_order(order, 4).tolist() == [5, 3, 0, 1, 4, 2, 6, 5]
    assert padded_order(order, 1) is order
    batches = global_batches(order, 2, world=4)
    assert [len(rank_part(b, 3, 4)) for b in batches] == [2]


def test_the_parts_of_a_batch_are_the_single_process_batch_with_the_same_draws():
    rng = np.random.default_rng(1)
    split = ImageSplit(
        array=rng.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8),
        dataset_indices=list(range(10)),
        labels=np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]),
        captions=[],
    )
    texts = TrainingTexts.for_classes(["a", "b", "c"], _Prompts())
    pool = TextPool(texts.texts, {"input_ids": torch.arange(6 * 4).view(6, 4)}, np.full(6, 4))
    spec = ImageInputSpec(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    rows = np.array([7, 2, 9, 0, 4, 1, 8, 3])

    def build(rank: int, world: int):
        transform = BatchTransform("standard", spec, train=True, seed=0)
        return make_batch(split, rows, texts, pool, transform, np.random.default_rng(5), rank=rank, world=world)

    whole = build(0, 1)
    parts = [build(r, 2) for r in range(2)]
    for r, part in enumerate(parts):
        torch.testing.assert_close(part.pixels, whole.pixels[r::2])
        assert torch.equal(part.keys, whole.keys[r::2])
        assert torch.equal(part.tokens["input_ids"], whole.tokens["input_ids"][r::2])


class _Prompts:
    def texts_for(self, name: str) -> list[str]:
        return [f"a {name}", f"an image of {name}"]


@pytest.mark.parametrize("kind", ["multi_positive", "clip"])
def test_the_mean_loss_of_row_blocks_is_the_whole_batch_loss_with_its_gradient(kind):
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(8, 6), dim=1).requires_grad_(True)
    text = torch.nn.functional.normalize(torch.randn(8, 6), dim=1).requires_grad_(True)
    keys = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    whole = contrastive_loss(10 * image @ text.t(), keys, kind=kind)
    expected = torch.autograd.grad(whole, (image, text))
    blocks = [
        contrastive_loss_of_rows(
            10 * image[s] @ text.t(), 10 * text[s] @ image.t(), keys[s], keys, first=s.start, kind=kind
        )
        for s in (slice(0, 4), slice(4, 8))
    ]
    mean = sum(blocks) / 2
    assert float(mean.detach()) == pytest.approx(float(whole.detach()), abs=1e-6)
    for got, want in zip(torch.autograd.grad(mean, (image, text)), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_resuming_with_other_process_counts_keeps_the_global_batch():
    assert resumed_batch_size(8, {"processes": 1, "global_batch_size": 8}, 2) == (
        4,
        "Resuming with 2 process(es) instead of 1: 4 images per process keep the run's batch of 8 images per step.",
    )
    assert resumed_batch_size(4, {"processes": 2, "global_batch_size": 8}, 1)[0] == 8
    assert resumed_batch_size(4, {"processes": 2, "global_batch_size": 8}, 2) == (4, "")
    assert resumed_batch_size(8, {}, 1) == (8, "")  # runs from before several processes
    with pytest.raises(ConfigError, match="divides 8"):
        resumed_batch_size(8, {"processes": 1, "global_batch_size": 8}, 3)


# --- two processes ------------------------------------------------------------------------------------------------
def _features() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return tuple(torch.nn.functional.normalize(torch.randn(8, 6), dim=1) for _ in range(2))


def _gathered_loss_parts(out: str) -> None:
    image, text = _features()
    keys = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    rank = torch.distributed.get_rank()
    mine = slice(4 * rank, 4 * rank + 4)
    for kind in ("multi_positive", "clip"):
        local_image = image[mine].clone().requires_grad_(True)
        local_text = text[mine].clone().requires_grad_(True)
        loss, accuracy = gathered_loss(local_image, local_text, keys[mine], torch.tensor(10.0), kind=kind)
        loss.backward()
        result = {"loss": float(loss.detach()), "accuracy": accuracy, "image": local_image.grad, "text": local_text.grad}
        torch.save(result, f"{out}/{kind}_rank{rank}.pt")


@pytest.mark.slow  # two processes
def test_the_gathered_loss_is_the_single_process_loss_of_the_whole_batch(tmp_path):
    run_processes(_gathered_loss_parts, str(tmp_path))

    for kind in ("multi_positive", "clip"):
        image, text = (f.requires_grad_(True) for f in _features())
        keys = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
        logits = 10 * image @ text.t()
        whole = contrastive_loss(logits, keys, kind=kind)
        whole.backward()
        parts = [torch.load(tmp_path / f"{kind}_rank{r}.pt") for r in range(2)]
        for r, part in enumerate(parts):
            assert part["loss"] == pytest.approx(float(whole.detach()), abs=1e-6)
            mine = slice(4 * r, 4 * r + 4)
            # Each process's gradient is its rows' share; DistributedDataParallel averages the two shares.
            torch.testing.assert_close(part["image"] / 2, image.grad[mine])
            torch.testing.assert_close(part["text"] / 2, text.grad[mine])
            assert part["accuracy"] == pytest.approx(float(keys[logits.argmax(dim=1)].eq(keys).float().mean()))


@pytest.fixture
def float32_inference(monkeypatch) -> None:
    """The model's own encoding in float32, here and in the processes spawned (they inherit it).

    Validation encodes its texts at the model's inference precision, bf16 where that is fast (this
    CPU): 3 significant digits, so weights equal to 2e-7 gave validation losses 3e-3 apart.
    """
    monkeypatch.setenv(BF16_INFERENCE_ENV, "0")


_METHODS = [
    dict(method="full", loss="multi_positive"),
    dict(method="full", loss="clip", grad_accum=2),
    dict(method="lora", loss="multi_positive"),
    dict(method="lock_image", loss="clip"),
    dict(method="linear_probe", epochs=3),
]


@pytest.mark.slow  # two processes, five runs each way
@pytest.mark.usefixtures("float32_inference")
def test_two_processes_with_batch_b_train_like_one_process_with_batch_2b(class_data, tiny_clip_dir, make_cfg):
    # 12 training images: steps of 8 then 4 images, 2 epochs; augmentation on (drawn for the global batch).
    common = dict(epochs=2, augmentation="standard", learning_rate=1e-3)
    pairs = []
    for i, settings in enumerate(_METHODS):
        settings = common | settings
        one = make_cfg(class_data, tiny_clip_dir, name=f"one_{i}", batch_size=8, **settings)
        two = make_cfg(class_data, tiny_clip_dir, name=f"two_{i}", batch_size=4, **settings)
        one.lora.dropout = two.lora.dropout = 0.0  # dropout masks are drawn per process
        pairs.append((one, two))
    run_processes(_train, [two for _, two in pairs])
    for one, two in pairs:
        Trainer(one).fit()
        assert_same_training(Path(two.output), Path(one.output))
        info = read_run_info(Path(two.output))
        assert (info["processes"], info["global_batch_size"]) == (2, 8)
    assert not any(Path(two.output, "..").glob("two_*/*.tmp"))


@pytest.mark.slow  # three runs, two of them in two processes
@pytest.mark.usefixtures("float32_inference")
def test_resuming_across_process_counts_continues_exactly(class_data, tiny_clip_dir, make_cfg):
    common = dict(epochs=2, augmentation="standard", learning_rate=1e-3)
    straight = make_cfg(class_data, tiny_clip_dir, name="straight", batch_size=8, **common)
    Trainer(straight).fit()

    # One process stops after a step; two processes finish it (batch 8 -> 4 per process by themselves).
    one = make_cfg(class_data, tiny_clip_dir, name="one_then_two", batch_size=8, **common)
    _train_and_stop_after(one, 1)
    run_processes(_train, [dataclasses.replace(one, resume_from=one.output)])
    assert_same_training(Path(one.output), Path(straight.output))

    # Two processes stop after three steps (mid-epoch 2); one process finishes it.
    two = make_cfg(class_data, tiny_clip_dir, name="two_then_one", batch_size=4, **common)
    run_processes(_train_and_stop_after, two, 3)
    assert find_checkpoint(Path(two.output), LATEST) is not None
    Trainer(dataclasses.replace(two, resume_from=two.output)).fit()
    assert_same_training(Path(two.output), Path(straight.output))


@pytest.mark.slow  # two processes, two runs each way
@pytest.mark.usefixtures("float32_inference")
def test_validation_split_among_processes_scores_as_one_process_does(
    tmp_path, make_class_folders, make_clip_finetune, tiny_clip_dir, make_cfg
):
    # 7 and 5 validation images: the processes' blocks differ in length, and the gather pads them.
    # 14 and 8 training images: every global batch divides evenly, so the training matches too.
    classes = make_class_folders(tmp_path / "odd", {"red": 9, "green": 6, "blue": 6})
    pairs = make_clip_finetune(tmp_path / "pairs", {"train": 8, "val": 5})
    pairs_of = []
    for name, data, method in (("classes", classes, "full"), ("pairs", pairs, "lock_image")):
        settings = dict(epochs=2, method=method, learning_rate=1e-3)
        one = make_cfg(data, tiny_clip_dir, name=f"one_{name}", batch_size=4, **settings)
        two = make_cfg(data, tiny_clip_dir, name=f"two_{name}", batch_size=2, **settings)
        pairs_of.append((one, two))
    run_processes(_train, [two for _, two in pairs_of])
    for one, two in pairs_of:
        Trainer(one).fit()
        splits = json.loads((Path(two.output) / "splits.json").read_text())
        assert len(splits["val"]) % 2 == 1
        assert_same_training(Path(two.output), Path(one.output))


_BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.mark.slow  # two processes, two runs
def test_batch_norm_statistics_stay_frozen_when_training_on_two_processes(class_data, tiny_dual_dir, make_cfg):
    # The tiny DualEncoder's image tower is a CNN with BatchNorm, as the built-in EfficientNet is.
    cfgs = [make_cfg(class_data, tiny_dual_dir, name=method, method=method, batch_size=4, epochs=1)
            for method in ("full", "lora")]
    run_processes(_train, cfgs)
    before = load_model(str(tiny_dual_dir), device="cpu").torch_module.state_dict()
    statistics = [k for k in before if k.endswith(_BATCH_NORM_STATISTICS)]
    assert statistics
    for cfg in cfgs:
        after = load_model(str(find_checkpoint(Path(cfg.output), LATEST)), device="cpu").torch_module.state_dict()
        for key in statistics:
            torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    full = load_model(str(find_checkpoint(Path(cfgs[0].output), LATEST)), device="cpu").torch_module.state_dict()
    norm_weights = [k.replace("running_mean", "weight") for k in statistics if k.endswith("running_mean")]
    assert any(not torch.equal(full[k], before[k]) for k in norm_weights)  # their scale and shift still train


def _raise_on_rank_one(cfg) -> None:
    if torch.distributed.get_rank() == 1:
        raise RuntimeError("rank one could not read its images")
    Trainer(cfg).fit()


@pytest.mark.slow  # two processes
def test_a_failing_process_stops_the_others_with_its_error(class_data, tiny_clip_dir, make_cfg):
    cfg = make_cfg(class_data, tiny_clip_dir, batch_size=4)
    started = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException, match="rank one could not read its images"):
        run_processes(_raise_on_rank_one, cfg)
    assert time.monotonic() - started < _DEADLINE_S


def test_torchrun_runs_the_cli_standalone_here_and_meets_at_the_endpoint_across_machines(tmp_path, make_cfg):
    with config_command(make_cfg(tmp_path, tmp_path)) as command:
        config = Path(command[-1])
        assert command == ["train", "--config", str(config)] and config.is_file()
    assert not config.exists()  # the temporary config is gone once the processes have ended
    here = torchrun_arguments(command, nproc_per_node=2)
    assert here[:5] == ["--nproc-per-node", "2", "--nnodes", "1", "--standalone"]
    assert here[-5:] == ["-m", "clipstudio", "train", "--config", str(config)]
    embed = ["embed", "data", "--output", "e.npz"]
    across = torchrun_arguments(embed, nproc_per_node=8, nnodes="2", node_rank=1, rdzv_endpoint="10.0.0.1:29400")
    assert "--standalone" not in across and across[-6:] == ["-m", "clipstudio", *embed]
    assert across[across.index("--rdzv-endpoint") + 1] == "10.0.0.1:29400"
    assert across[across.index("--node-rank") + 1] == "1"
    with pytest.raises(ConfigError, match="--rdzv-endpoint"):
        torchrun_arguments(embed, nproc_per_node=8, nnodes="2")


def test_ctrl_break_reaches_the_processes_and_not_their_launcher(monkeypatch):
    # Windows only: there the app's Stop sends Ctrl+Break (SIGBREAK) to the launcher and its processes.
    # Here a spare signal stands in for it.
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    with ctrl_break_left_to_workers():
        signal.raise_signal(signal.SIGUSR1)  # ignored: the launcher waits for its processes to save
    assert signal.getsignal(signal.SIGUSR1) == before
