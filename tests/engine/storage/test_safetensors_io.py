"""Our GIL-friendly safetensors writer produces exactly what the safetensors library writes."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from clipstudio.engine.models.frozen_files import FrozenFiles
from clipstudio.engine.storage import safetensors_io
from clipstudio.engine.storage.safetensors_io import save_safetensors


def _mixed_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "weight": torch.randn(7, 5),
        "half": torch.randn(3, 3).to(torch.bfloat16),
        "fp16": torch.randn(4).to(torch.float16),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "steps": torch.arange(9, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "pixels": torch.randint(0, 255, (2, 3), dtype=torch.uint8),
        "transposed": torch.randn(4, 6).t(),  # not contiguous
        "grad": torch.randn(3, requires_grad=True),
    }


def test_file_is_byte_identical_to_safetensors_save_file(tmp_path):
    tensors = _mixed_tensors()
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp_path / "ref.safetensors",
              metadata={"format": "pt"})
    save_safetensors(tensors, tmp_path / "ours.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_round_trip_through_the_safetensors_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors_io, "CHUNK_BYTES", 8)  # many chunks per tensor
    tensors = _mixed_tensors()
    save_safetensors(tensors, tmp_path / "w.safetensors", metadata={"epoch": 3})
    loaded = load_file(tmp_path / "w.safetensors")
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor.detach()), name
    with safe_open(tmp_path / "w.safetensors", "pt") as fh:
        assert fh.metadata() == {"epoch": "3"}


def test_unsupported_dtype_is_refused_by_name_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="'z'"):
        save_safetensors({"z": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_saved_hf_clip_folder_matches_save_pretrained(tmp_path, tiny_clip_dir):
    from transformers import CLIPModel

    from clipstudio.engine.models import load_model

    model = load_model(str(tiny_clip_dir), device="cpu")
    model.save(tmp_path / "ours")
    CLIPModel.from_pretrained(tiny_clip_dir).save_pretrained(tmp_path / "hf")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "hf" / name).read_bytes(), name
    again = load_model(str(tmp_path / "ours"), device="cpu")
    texts = ["a chest x-ray", "pneumonia"]
    assert torch.allclose(torch.as_tensor(again.encode_texts(texts)), torch.as_tensor(model.encode_texts(texts)))


def test_frozen_files_save_once_and_again_when_the_key_changes(tmp_path):
    calls = []
    setting = {"size": 224}

    def save(folder: str) -> None:
        calls.append(folder)
        from pathlib import Path

        Path(folder, "tokenizer.json").write_text(f"size {setting['size']}", encoding="utf-8")
        Path(folder, "sub").mkdir()
        Path(folder, "sub", "vocab.txt").write_text("a b c", encoding="utf-8")

    files = FrozenFiles(save, key=lambda: setting["size"])
    for i in range(3):
        files.write(tmp_path / f"ckpt{i}")
    assert len(calls) == 1
    assert (tmp_path / "ckpt2" / "tokenizer.json").read_text(encoding="utf-8") == "size 224"
    assert (tmp_path / "ckpt2" / "sub" / "vocab.txt").read_text(encoding="utf-8") == "a b c"
    setting["size"] = 112
    files.write(tmp_path / "ckpt3")
    assert len(calls) == 2
    assert (tmp_path / "ckpt3" / "tokenizer.json").read_text(encoding="utf-8") == "size 112"
