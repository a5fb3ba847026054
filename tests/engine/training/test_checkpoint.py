"""Checkpoint folders are swapped in atomically and training state survives a round trip."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
import torch

from clipstudio.engine.models import load_model
from clipstudio.engine.runs.layout import STATE_JSON, find_checkpoint
from clipstudio.engine.training.checkpoint import (
    load_train_state,
    save_train_state,
    write_checkpoint_folder,
)


def test_training_state_round_trips_optimizer_and_rng_state(tmp_path):
    param = torch.nn.Parameter(torch.randn(3, 2))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    param.sum().backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state()),
        "python": list(random.getstate()),
        "history": {"train_loss": [1.5, 1.25], "val_acc": [None, 0.5]},
    }

    save_train_state(tmp_path, state)
    loaded = load_train_state(tmp_path)

    restored = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3, 2))], lr=0.1)
    restored.load_state_dict(loaded["optimizer"])
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert torch.equal(loaded["torch"], state["torch"])
    np.random.set_state(tuple(loaded["numpy"]))
    assert loaded["history"] == state["history"]
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def _writer(model, marker: str):
    def write(folder):
        model.save(folder)
        save_train_state(folder, {"marker": marker})

    return write


@pytest.mark.parametrize("failing_call", [1, 2])
def test_crash_between_write_and_rename_leaves_previous_checkpoint_loadable(
    tmp_path, tiny_dual_dir, monkeypatch, failing_call
):
    model = load_model(str(tiny_dual_dir), device="cpu")
    final = tmp_path / "checkpoint_latest"
    write_checkpoint_folder(final, _writer(model, "first"))

    real_replace = os.replace
    calls = []

    def crashing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:  # 1: moving the old folder aside; 2: moving the new one in
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        write_checkpoint_folder(final, _writer(model, "second"))
    monkeypatch.setattr(os, "replace", real_replace)

    found = find_checkpoint(tmp_path, "checkpoint_latest")
    assert found is not None
    assert load_train_state(found)["marker"] == "first"
    load_model(str(found), device="cpu")  # the model files are intact too
    assert not list(tmp_path.glob("*.tmp-*"))  # the half-written folder was cleaned up

    # The next save recovers: a complete folder under the main name again, no leftovers.
    write_checkpoint_folder(final, _writer(model, "third"))
    assert load_train_state(final)["marker"] == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_latest"]


def test_a_folder_without_its_state_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "checkpoint_latest").mkdir()
    assert find_checkpoint(tmp_path) is None
    old = tmp_path / "checkpoint_latest.old"
    old.mkdir()
    save_train_state(old, {"epoch": 1})
    assert find_checkpoint(tmp_path) == old
    shutil.rmtree(old)
    assert (tmp_path / "checkpoint_latest" / STATE_JSON).exists() is False
