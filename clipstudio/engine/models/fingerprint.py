"""Stable digests of a model's weights and preprocessing: the embedding cache's key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def weights_digest(module: torch.nn.Module, extra: dict[str, Any] | None = None) -> str:
    """sha256 over every state-dict tensor (name, dtype, shape, bytes) plus ``extra`` as canonical JSON.

    Device-independent and stable across processes: the same weights give the same hex digest.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(extra or {}, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def weights_version(module: torch.nn.Module) -> tuple[int, ...]:
    """Cheap token that changes whenever a parameter or buffer is modified in place (e.g. an optimizer step).

    Uses torch's per-tensor version counter, so a cached fingerprint can be reused until training
    touches the weights.
    """
    tensors = [*module.parameters(), *module.buffers()]
    return (len(tensors), *(id(t) for t in tensors), sum(t._version for t in tensors))


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of the tokenizer's vocabulary and rules (they decide token ids, hence embeddings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation/padding are call-time state the tokenizer remembers after use, not its identity.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(state, sort_keys=True, ensure_ascii=False)
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
