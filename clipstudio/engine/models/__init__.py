"""Image-text models: ``load_model(spec)`` for the built-in model, a saved folder, a run folder or a Hub id.

Importing this package is cheap and never imports Qt; transformers is imported when a model loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.builtin import load_builtin
from clipstudio.engine.models.dual_encoder import DualEncoderModel
from clipstudio.engine.models.fingerprint import adopt_image_embeddings
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.models.hub import FALLBACK_ADVICE, fetch_model_folder, looks_like_hub_id
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.models.manifest import MANIFEST_NAME, read_manifest
from clipstudio.engine.models.open_clip_format import is_open_clip_folder, is_open_clip_repo, load_open_clip
from clipstudio.engine.models.tip_adapter_head import TipAdapterModel
from clipstudio.engine.models.vit_hf_text import ViTHFTextModel
from clipstudio.engine.runs.layout import BASE_MODEL_DIR, checkpoint_folder, is_run_folder, read_run_info
from clipstudio.engine.runtime.allocator import tune_malloc
from clipstudio.engine.runtime.device import select_device

__all__ = ["ImageTextModel", "load_model", "load_run_model", "BUILTIN"]

BUILTIN = "builtin"


def _load_hf_clip(folder: Path, device: torch.device, source: str = "") -> ImageTextModel:
    return HFClipModel.load(folder, device, source=source)


def _load_dual_encoder(folder: Path, device: torch.device, source: str = "") -> ImageTextModel:
    return DualEncoderModel.load(folder, device)


def _load_vit_hf_text(folder: Path, device: torch.device, source: str = "") -> ImageTextModel:
    return ViTHFTextModel.load(folder, device)


# clipstudio_model.json "kind" -> loader. Add a model kind by adding its loader here.
LOADERS: dict[str, Callable[[Path, torch.device, str], ImageTextModel]] = {
    "hf_clip": _load_hf_clip,
    "dual_encoder": _load_dual_encoder,
    "vit_hf_text": _load_vit_hf_text,
}


def load_model(spec: str = BUILTIN, *, device: str = "auto") -> ImageTextModel:
    """Load ``"builtin"``, a model folder (CLIP Studio or Hugging Face CLIP), a training run folder, or a Hub id.

    A run folder gives its trained model: checkpoint_best, else checkpoint_latest (see ``load_run_model``).

    Raises ModelError with one sentence naming the problem when the model can't be loaded.
    """
    tune_malloc()  # before the first large tensors; see allocator.py
    target = select_device(device)
    quiet_transformers()
    spec = str(spec).strip()
    if spec == BUILTIN:
        return load_builtin(target)
    path = Path(spec).expanduser()
    if path.exists():
        if is_run_folder(path):
            return load_run_model(path, "best", device=str(target))
        return load_model_folder(path, target)
    if looks_like_hub_id(spec):
        if is_open_clip_repo(spec):
            return load_open_clip(spec, target)
        return _load_hf_clip(fetch_model_folder(spec), target, source=spec)
    raise ModelError(
        f"Model {spec!r} is neither a folder nor a Hugging Face id like openai/clip-vit-base-patch32; {FALLBACK_ADVICE}."
    )


def load_run_model(path: str | Path, which: str = "best", device: str = "auto") -> ImageTextModel:
    """The trained model of a run folder: checkpoint_best if present (``which="best"``), else checkpoint_latest.

    Linear-probe runs give a ``LinearProbeModel``: the frozen model plus the trained class head;
    Tip-Adapter runs a ``TipAdapterModel``: the frozen model plus the cache.
    """
    path = Path(path)
    info = read_run_info(path)
    folder = checkpoint_folder(path, which)
    target = select_device(device)
    # A frozen image encoder reuses the starting model's cached image embeddings (checked, not assumed).
    record = info.get("image_encoder")
    if info.get("method") == "linear_probe":
        base = load_model_folder(path / BASE_MODEL_DIR, target)
        adopt_image_embeddings(base, record)
        return LinearProbeModel.from_checkpoint(base, folder)
    if info.get("method") in ("tip_adapter", "tip_adapter_f"):
        base = load_model_folder(path / BASE_MODEL_DIR, target)
        adopt_image_embeddings(base, record)
        return TipAdapterModel.from_checkpoint(base, folder)
    model = load_model_folder(folder, target)
    adopt_image_embeddings(model, record)
    return model


def quiet_transformers() -> None:
    """transformers' own weight-loading bars and notices would interleave with ours (CLI) or go nowhere (GUI)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_model_folder(folder: Path, device: torch.device) -> ImageTextModel:
    """A saved CLIP Studio model (``clipstudio_model.json``) or a Hugging Face CLIP folder (``config.json``)."""
    expected = f'a CLIP Studio model ({MANIFEST_NAME}) or a Hugging Face CLIP model (config.json with model_type "clip")'
    if not folder.is_dir():
        raise ModelError(
            f"{str(folder)!r} is a file, not a model folder; expected a folder holding {expected}."
        )
    if (folder / MANIFEST_NAME).is_file():
        kind = read_manifest(folder)["kind"]
        loader = LOADERS.get(kind)
        if loader is None:
            raise ModelError(
                f"{str(folder)!r} holds a model of unknown kind {kind!r}; expected one of {sorted(LOADERS)}."
            )
        return loader(folder, device, str(folder))
    if is_open_clip_folder(folder):
        return load_open_clip(folder, device)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{str(folder)!r} is not a model folder; expected {expected}.")
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError):
        raise ModelError(f"{config_path} is not a valid Hugging Face config; expected {expected}.") from None
    if model_type != "clip":
        raise ModelError(f"{str(folder)!r} holds a {model_type!r} model, not CLIP; expected {expected}.")
    return _load_hf_clip(folder, device, str(folder))
