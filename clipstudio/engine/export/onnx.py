"""``--format onnx``: image and text encoders as ONNX files, plus the classification head, checked with onnxruntime.

The folder holds ``image_encoder.onnx`` (``pixel_values`` (N, 3, S, S) float32 -> ``image_embeddings``),
``text_encoder.onnx`` (``input_ids``, ``attention_mask`` (N, T) int64 -> ``text_embeddings``; both
outputs L2-normalised), ``tokenizer/`` (the text encoder's tokenizer files), ``head.json`` (class
names, logit scale, preprocessing) and ``head.safetensors`` (``class_embeddings`` (C, D), ``class_bias``
(C,)). A program classifies an image with onnxruntime alone: preprocess as ``head.json`` says, run the
image encoder, take the class with the largest ``logit_scale * class_embeddings @ embedding + class_bias``.

onnx and onnxruntime are optional (``pip install clipstudio[export]``): imported only here.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file
from torch import nn

from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.export.head import ClassHead
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing, ImagePreprocessing
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.storage.atomic import atomic_write_json, atomic_write_text

IMAGE_ENCODER = "image_encoder.onnx"
TEXT_ENCODER = "text_encoder.onnx"
TOKENIZER_DIR = "tokenizer"
HEAD_JSON = "head.json"
HEAD_TENSORS = "head.safetensors"
README_NAME = "README.md"
OPSET = 17
MIN_COSINE = 0.9999
CHECK_TEXTS = ["a chest X-ray", "an H&E stained histology slide of a lymph node", "skin"]
INSTALL_HINT = "ONNX export needs onnx and onnxruntime: pip install clipstudio[export]"


def require_onnx() -> None:
    """Raise a one-line ConfigError when onnx or onnxruntime is not installed."""
    if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime")):
        raise ConfigError(INSTALL_HINT)


class _ImageEncoder(nn.Module):
    def __init__(self, model: ImageTextModel) -> None:
        super().__init__()
        self.model = model
        self.weights = model.torch_module  # registered, so the exporter sees the parameters

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_images(pixel_values)


class _TextEncoder(nn.Module):
    def __init__(self, model: ImageTextModel) -> None:
        super().__init__()
        self.model = model
        self.weights = model.torch_module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.forward_texts({"input_ids": input_ids, "attention_mask": attention_mask})


def preprocessing_of(model: ImageTextModel) -> ImagePreprocessing:
    """The model's image preprocessing as plain settings another program can reimplement."""
    if isinstance(model, HFClipModel):
        settings = model.image_preprocessing()  # with an open_clip model's rounded crop offset
        if settings is None:
            raise ModelError("This CLIP model's image processor does more than resize, crop and normalise; "
                             "its preprocessing can't be described for ONNX export.")
        return settings
    settings = getattr(model, "preprocessing", None)
    if not isinstance(settings, ImagePreprocessing):
        raise ModelError(f"A {model.kind!r} model does not describe its image preprocessing; it can't be exported.")
    return settings


def preprocessing_json(p: ImagePreprocessing) -> dict:
    """``p`` spelled out for another program: every step, in order."""
    return {
        "color": "RGB",
        "resize_shorter_side_to": p.resize_size or p.image_size,
        "resample": p.resample,
        # CLIP processors truncate the longer side's new length; CLIP Studio's own models round it.
        "longer_side": "floor" if isinstance(p, CLIPProcessorPreprocessing) else "round",
        "center_crop": p.image_size,
        "crop_offset": "(new_size - crop) // 2" if p.crop_offset == "floor" else "int(round((new_size - crop) / 2.0))",
        "rescale": 1 / 255,
        "mean": list(p.mean),
        "std": list(p.std),
        "layout": "NCHW float32",
    }


def export_onnx(model: ImageTextModel, folder: Path, head: ClassHead | None, check_images: list[Path]) -> dict:
    """Write the encoders, tokenizer and head into ``folder``; raise ModelError if onnxruntime disagrees with torch."""
    require_onnx()
    base = model.base if isinstance(model, LinearProbeModel) else model
    base.bf16_inference = False  # the reference embeddings are fp32, like the ONNX graphs
    settings = preprocessing_of(base)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter: exact for these models, no onnxscript needed; it warns about
        # Python branches on shapes it freezes (checked below on other shapes) and its own deprecation.
        warnings.simplefilter("ignore")
        size = settings.image_size
        torch.onnx.export(
            _ImageEncoder(base).eval(), (torch.zeros(2, 3, size, size),), str(folder / IMAGE_ENCODER),
            input_names=["pixel_values"], output_names=["image_embeddings"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeddings": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
        tokens = base.tokenize(["a photo of a cat", "an image"])
        torch.onnx.export(
            _TextEncoder(base).eval(), (tokens["input_ids"].cpu(), tokens["attention_mask"].cpu()),
            str(folder / TEXT_ENCODER),
            input_names=["input_ids", "attention_mask"], output_names=["text_embeddings"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "text_embeddings": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    base.tokenizer.save_pretrained(folder / TOKENIZER_DIR)
    texts = (head.texts_flat() if head else [])[:8] + CHECK_TEXTS
    parity = check_parity(base, folder, check_inputs(check_images), texts)
    info = {
        "format": 1,
        "image_encoder": IMAGE_ENCODER,
        "text_encoder": TEXT_ENCODER,
        "tokenizer": TOKENIZER_DIR,
        "max_text_tokens": base.max_text_tokens,
        "embed_dim": base.embed_dim,
        "logit_scale": float(head.weights.scale if head else model.logit_scale),
        "preprocessing": preprocessing_json(settings),
        "classify": "scores = logit_scale * class_embeddings @ image_embedding + class_bias; the class is the argmax",
        "parity": parity,
    }
    if head is not None:
        info.update(head.to_json())
        weights = head.weights
        bias = np.zeros(len(weights.rows), np.float32) if weights.bias is None else weights.bias
        tensors = {"class_embeddings": weights.rows, "class_bias": bias}
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
                  str(folder / HEAD_TENSORS))
        info["head_tensors"] = HEAD_TENSORS
    atomic_write_json(folder / HEAD_JSON, info)
    atomic_write_text(folder / README_NAME, ONNX_README.format(head=HEAD_JSON, tensors=HEAD_TENSORS))
    return parity


def check_inputs(paths: list[Path]) -> list[Image.Image]:
    """A few real images (``paths`` that open) plus structured synthetic ones of odd sizes."""
    images = []
    for path in paths:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except OSError:
            continue
    rng = np.random.default_rng(0)
    for h, w in ((61, 47), (40, 90)):
        y, x = np.mgrid[0:h, 0:w]
        ramp = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=-1)
        noise = rng.integers(0, 64, size=(h, w, 3))
        images.append(Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8)))
    return images


def check_parity(model: ImageTextModel, folder: Path, images: list[Image.Image], texts: list[str]) -> dict:
    """Worst cosine between onnxruntime's and torch's embeddings; ModelError below ``MIN_COSINE``."""
    import onnxruntime as ort  # deferred: optional extra (checked by require_onnx)

    pixels = model.preprocess(images)
    tokens = model.tokenize(texts)
    with torch.inference_mode():
        want_images = model.forward_images(pixels).cpu().numpy()
        want_texts = model.forward_texts(tokens).cpu().numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    run_image = ort.InferenceSession(str(folder / IMAGE_ENCODER), options, providers=["CPUExecutionProvider"])
    run_text = ort.InferenceSession(str(folder / TEXT_ENCODER), options, providers=["CPUExecutionProvider"])
    got_images = run_image.run(None, {"pixel_values": pixels.numpy().astype(np.float32)})[0]
    got_texts = run_text.run(None, {"input_ids": tokens["input_ids"].cpu().numpy().astype(np.int64),
                                    "attention_mask": tokens["attention_mask"].cpu().numpy().astype(np.int64)})[0]
    worst = {"image_cosine": _worst_cosine(got_images, want_images), "text_cosine": _worst_cosine(got_texts, want_texts)}
    for what, cosine in worst.items():
        if not cosine >= MIN_COSINE:  # also catches NaN
            raise ModelError(
                f"The ONNX {what.split('_')[0]} encoder disagrees with the PyTorch model "
                f"(cosine {cosine:.6f} < {MIN_COSINE}); nothing was exported."
            )
    return {**worst, "n_images": len(images), "n_texts": len(texts)}


def _worst_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))


ONNX_README = """# CLIP model exported to ONNX by CLIP Studio

Classify an image with onnxruntime, numpy and PIL alone:

1. Preprocess as `{head}` → `preprocessing` says: RGB; resize the shorter side to `resize_shorter_side_to`
   (`resample` filter; the longer side's new length rounded as `longer_side` says); crop the centre
   `center_crop` square (offset as `crop_offset` says); `x * rescale`, then `(x - mean) / std`; NCHW float32.
2. `image_encoder.onnx`: `pixel_values` → `image_embeddings` (L2-normalised).
3. `{tensors}` → `class_embeddings` (one row per `class_names` entry) and `class_bias`: the logits are
   `logit_scale * class_embeddings @ embedding + class_bias` (softmax for probabilities); the class is the argmax.

`text_encoder.onnx` takes `input_ids` and `attention_mask` (int64) from the tokenizer in `tokenizer/`
(e.g. `tokenizers.Tokenizer.from_file("tokenizer/tokenizer.json")`) and gives L2-normalised text embeddings.
"""
