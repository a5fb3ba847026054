"""Encoding images and texts into embedding vectors, reusing cached vectors where given a cache.

Images are decoded ahead of the model on a few threads; texts are encoded in batches. The caches
themselves live in ``engine.cache.vectors``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.cache.file_index import Progress, decode_ahead, decode_or_problem
from clipstudio.engine.cache.vectors import EmbeddingCache, TextEmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE
from clipstudio.engine.data.dataset import Problem
from clipstudio.engine.data.images import load_image
from clipstudio.engine.errors import ImageError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

log = logging.getLogger(__name__)

_CHECK_IMAGES = 3  # readable images tried when checking the split preprocessing against the model's
_CHECK_TOLERANCE = 1e-5  # the split is bit-exact for known models; this only allows float reordering


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


@dataclass
class EncodedImages:
    """Embeddings of the images that decoded, and what happened to the rest."""

    embeddings: np.ndarray  # (N_ok, D) float32, rows in the order of `indices`
    indices: list[int]  # positions in the input list that encoded OK
    problems: list[Problem] = field(default_factory=list)  # unreadable images, with reasons
    n_cached: int = 0
    n_encoded: int = 0
    cancelled: bool = False  # should_stop() was honoured; the fields cover the work done so far


def encode_image_files(
    model: ImageTextModel,
    paths: list[Path],
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
    num_workers: int | None = None,
) -> EncodedImages:
    """Embed image files, reusing cached vectors; unreadable images are skipped and listed.

    Decoding, resizing and cropping run in ``num_workers`` threads (default: one per core, at
    most 8) ahead of the model, so reading the next batch overlaps encoding this one; each
    batch is then normalised at once. Cancellation returns the work done so far.
    """
    import torch  # deferred: the GUI imports this module at start-up, long before it encodes anything

    paths = [Path(p) for p in paths]
    total = len(paths)
    progress = Progress(callback, "encode images", total)
    fingerprint = model.image_fingerprint() if cache is not None else ""
    hits = cache.get_many(fingerprint, paths) if cache is not None else {}
    # A vector of the wrong width can only come from a damaged cache: re-encode rather than crash.
    vectors = {i: v for i, v in hits.items() if v.shape == (model.embed_dim,)}
    n_cached = len(vectors)
    problems: dict[int, Problem] = {}
    progress.update(n_cached, force=True)

    misses = [i for i in range(total) if i not in vectors]
    cancelled = False
    n_encoded = 0
    if misses:
        stages = _split_preprocessing(model, [paths[i] for i in misses[:_CHECK_IMAGES]])
        # uint8 crops with `stages` (normalised per batch), else the model's preprocessed tensors
        convert = stages.crop if stages is not None else (lambda image: model.preprocess([image]))
        batch_idx: list[int] = []
        batch_pixels: list = []

        def flush() -> None:
            nonlocal n_encoded
            if not batch_idx:
                return
            with torch.inference_mode():
                if stages is not None:
                    pixels = stages.normalise(np.stack(batch_pixels))
                else:
                    pixels = torch.cat(batch_pixels)
                if model.device.type == "cuda":  # pinned: the copy overlaps the next batch's decode
                    pixels = pixels.pin_memory()
                pixels = pixels.to(model.device, non_blocking=True)
                emb = model.encode_images(pixels).detach().float().cpu().numpy()
            emb = np.ascontiguousarray(emb, dtype=np.float32)
            for i, row in zip(batch_idx, emb, strict=True):
                vectors[i] = row
            if cache is not None:
                cache.put_many(fingerprint, [paths[i] for i in batch_idx], emb)
            n_encoded += len(batch_idx)
            batch_idx.clear()
            batch_pixels.clear()

        decoded = decode_ahead(
            lambda i: decode_or_problem(paths[i], convert),
            misses,
            workers=num_workers if num_workers is not None else min(8, os.cpu_count() or 1),
            lookahead=2 * batch_size,
            name="decode",
        )
        with contextlib.closing(decoded):
            for i, outcome in decoded:
                if should_stop():
                    cancelled = True  # the partly filled batch is dropped: stopping beats finishing it
                    break
                if isinstance(outcome, Problem):
                    problems[i] = outcome
                else:
                    batch_idx.append(i)
                    batch_pixels.append(outcome)
                if len(batch_idx) >= batch_size:
                    flush()
                progress.update(n_cached + n_encoded + len(problems))
        if not cancelled:
            flush()
    progress.update(n_cached + n_encoded + len(problems), force=True)

    indices = sorted(vectors)
    if indices:
        embeddings = np.stack([vectors[i] for i in indices])
    else:
        embeddings = np.zeros((0, model.embed_dim), dtype=np.float32)
    return EncodedImages(
        embeddings=embeddings.astype(np.float32, copy=False),
        indices=indices,
        problems=[problems[i] for i in sorted(problems)],
        n_cached=n_cached,
        n_encoded=n_encoded,
        cancelled=cancelled,
    )


def _split_preprocessing(model: ImageTextModel, sample: list[Path]) -> ImagePreprocessing | None:
    """``model.preprocess`` as a uint8 crop per image plus one normalisation per batch, or None.

    Known for models whose ``image_preprocessing()`` describes it (dual encoders, plain transformers
    CLIP image processors; the same crop training caches). Used only if it reproduces ``model.preprocess``
    on the first readable image of ``sample``: cached embeddings must be the ones the model's own
    preprocessing gives.
    """
    stages = model.image_preprocessing()
    if stages is None:
        return None
    for path in sample:
        try:
            image = load_image(path)
        except (ImageError, OSError):
            continue
        ours = stages.normalise(stages.crop(image)[None])
        theirs = model.preprocess([image])
        if ours.shape == theirs.shape and float((ours - theirs.float()).abs().max()) <= _CHECK_TOLERANCE:
            return stages
        log.debug(
            "%s preprocesses differently from %r; encoding with model.preprocess.",
            type(model).__name__,
            stages,
        )
        return None
    return None


def encode_texts(
    model: ImageTextModel,
    texts: list[str],
    *,
    batch_size: int = 256,
    callback: Callback = no_callback,
) -> np.ndarray:
    """(N, D) float32 text embeddings, encoded in batches."""
    import torch  # deferred: see encode_image_files

    if not texts:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    progress = Progress(callback, "encode texts", len(texts))
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out.append(model.encode_texts(batch).detach().float().cpu().numpy())
            progress.update(start + len(batch))
    progress.update(len(texts), force=True)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def normalised_text_embeddings(
    model: ImageTextModel,
    texts: list[str],
    *,
    cache: TextEmbeddingCache | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """(N, D) float32 L2-normalised text embeddings; with ``cache``, only the texts it lacks are encoded."""
    if cache is None:
        return l2_normalise(encode_texts(model, texts, batch_size=batch_size))
    fingerprint = model.fingerprint()
    found = cache.get_many(fingerprint, texts)
    missing = list(dict.fromkeys(t for t in texts if t not in found))
    if missing:
        fresh = l2_normalise(encode_texts(model, missing, batch_size=batch_size))
        cache.put_many(fingerprint, missing, fresh)
        found.update(zip(missing, fresh, strict=True))
    if not texts:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
