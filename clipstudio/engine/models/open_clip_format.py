"""open_clip-format checkpoints (BiomedCLIP, QuiltNet, ...) read with transformers classes, without open_clip.

A folder or Hub repo holding ``open_clip_config.json`` plus ``open_clip_model.safetensors`` or
``open_clip_pytorch_model.bin`` is converted once into a CLIP Studio model folder in the app's cache
(``cache_dir()/open_clip/<key>/``, safetensors weights) and loaded from there afterwards:

- a standard open_clip ViT CLIP (QuickGELU or GELU) becomes a transformers ``CLIPModel`` (``HFClipModel``);
- a timm ViT + Hugging Face text tower model becomes a ``ViTHFTextModel`` (transformers ``ViTModel`` +
  the text repo's ``AutoModel``), the text repo's config and tokenizer resolved through the HF cache.

A ``.bin`` is a pickle: it is only ever read with ``torch.load(weights_only=True)``, and one the
restricted loader refuses stops the load with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from pickle import UnpicklingError  # only to catch torch's weights-only refusal: nothing here unpickles

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.models.hub import (
    CLIP_TOKENIZER_FILES,
    FALLBACK_ADVICE,
    OPEN_CLIP_WEIGHT_NAMES,
    OPENAI_TOKENIZER_REPO,
    TEXT_REPO_FILES,
    cached_hub_file,
    has_clip_tokenizer,
    hub_file,
    hub_offline,
    hub_snapshot,
    list_hub_files,
)
from clipstudio.engine.models.manifest import MANIFEST_NAME, read_manifest
from clipstudio.engine.models.open_clip_config import (
    CONFIG_NAME,
    VIT_HF_TEXT,
    OpenClipConfig,
    parse_open_clip_config,
    unsupported,
)
from clipstudio.engine.models.open_clip_convert import (
    State,
    clip_vit_configs,
    clip_vit_to_hf,
    sub_state,
    timm_vit_config,
    timm_vit_to_hf,
)
from clipstudio.engine.models.vit_hf_text import ViTHFTextModel, ViTHFTextModule, build_towers
from clipstudio.engine.storage.paths import cache_dir

WEIGHT_NAMES = OPEN_CLIP_WEIGHT_NAMES
CONVERTER_VERSION = 3  # bump when a conversion changes: cached folders of older ones are not reused


@dataclass(frozen=True)
class OpenClipFiles:
    """Where one open_clip model's files are: a local folder or a Hub snapshot."""

    config: Path
    weights: Path
    folder: Path
    source: str  # the spec the user gave: shown in messages and kept as the model's source


# --- finding the files ---------------------------------------------------------------------------


def is_open_clip_folder(folder: Path) -> bool:
    """An open_clip model folder, and not also a Hugging Face CLIP one with safetensors (that loads directly)."""
    folder = Path(folder)
    hf_clip = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    return (folder / CONFIG_NAME).is_file() and not hf_clip


def is_open_clip_repo(repo_id: str) -> bool:
    """Whether a Hub repo (cached, else listed online) is open_clip-only: no HF CLIP safetensors to use instead."""
    if cached_hub_file(repo_id, "model.safetensors") is not None:
        return False
    if cached_hub_file(repo_id, CONFIG_NAME) is not None:
        return True
    files = list_hub_files(repo_id)
    return files is not None and CONFIG_NAME in files and "model.safetensors" not in files


def resolve_files(spec: str | Path) -> OpenClipFiles:
    """The config and weights of an open_clip model folder or Hub id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        weights = next((path / n for n in WEIGHT_NAMES if (path / n).is_file()), None)
        if not (path / CONFIG_NAME).is_file() or weights is None:
            raise ModelError(f"{str(path)!r} needs {CONFIG_NAME} and one of {', '.join(WEIGHT_NAMES)}.")
        return OpenClipFiles(path / CONFIG_NAME, weights, path, str(spec))
    repo_id = str(spec)
    where = (
        "in the local Hugging Face cache (offline mode is on)" if hub_offline() else "locally or on the Hub"
    )
    config = hub_file(repo_id, CONFIG_NAME)
    if config is None:
        raise ModelError(f"Model {repo_id!r} has no {CONFIG_NAME} {where}; {FALLBACK_ADVICE}.")
    weights = next((p for n in WEIGHT_NAMES if (p := hub_file(repo_id, n)) is not None), None)
    if weights is None:
        raise ModelError(
            f"Model {repo_id!r} has none of {', '.join(WEIGHT_NAMES)} {where}; {FALLBACK_ADVICE}."
        )
    return OpenClipFiles(config, weights, config.parent, repo_id)


def _local_or_hub(name: str, patterns: list[str]) -> Path:
    path = Path(name).expanduser()
    return path if path.is_dir() else hub_snapshot(name, patterns)


def clip_tokenizer_folder(files: OpenClipFiles) -> Path:
    """Where the BPE tokenizer is: the model's own files when it ships them, else OpenAI CLIP's."""
    if has_clip_tokenizer(files.folder):
        return files.folder
    if not Path(files.source).expanduser().is_dir():
        for name in ("tokenizer.json", "vocab.json", "merges.txt"):
            hub_file(files.source, name)  # the snapshot folder is files.folder: cached files appear there
        if has_clip_tokenizer(files.folder):
            return files.folder
    return hub_snapshot(OPENAI_TOKENIZER_REPO, CLIP_TOKENIZER_FILES)


# --- reading the weights -------------------------------------------------------------------------


def read_state_dict(path: Path) -> State:
    """An open_clip checkpoint's tensors: safetensors, or a .bin through torch's restricted unpickler only."""
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise ModelError(f"{str(path)!r} is not a readable safetensors file ({exc}).") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise ModelError(
            f"{str(path)!r} holds Python objects besides tensors; CLIP Studio refuses to unpickle it "
            "(it could run code), and loads only plain weights."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(
            f"{str(path)!r} is not a readable PyTorch checkpoint ({type(exc).__name__})."
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ModelError(f"{str(path)!r} is not a state dict of tensors.")
    if all(k.startswith("module.") for k in checkpoint):  # saved from a DistributedDataParallel wrapper
        checkpoint = {k[len("module.") :]: v for k, v in checkpoint.items()}
    return checkpoint


# --- building the models -------------------------------------------------------------------------


def build_vit_hf_text(cfg: OpenClipConfig, state: State, files: OpenClipFiles) -> ViTHFTextModel:
    """A ``ViTHFTextModel`` from a timm ViT + HF text tower checkpoint and the text repo's config/tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, ViTConfig

    text_dir = _local_or_hub(cfg.text_repo, TEXT_REPO_FILES)
    tokenizer_dir = (
        text_dir
        if cfg.tokenizer_repo == cfg.text_repo
        else _local_or_hub(cfg.tokenizer_repo, TEXT_REPO_FILES)
    )
    try:
        text_config = AutoConfig.from_pretrained(text_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Can't read the text tower's config or tokenizer from {cfg.text_repo!r}: {exc}"
        ) from None
    name = str(cfg.vision_cfg["timm_model_name"])
    trunk = sub_state(state, "visual.trunk.")
    vit_config = ViTConfig(**timm_vit_config(trunk, name, int(cfg.vision_cfg.get("head_width", 64))))
    if vit_config.image_size != cfg.preprocessing.image_size:
        raise ModelError(
            f"{files.source}: timm model {name!r} takes {vit_config.image_size} px images but the config says "
            f"{cfg.preprocessing.image_size} px."
        )
    image_tower, text_tower = build_towers(vit_config, text_config, cfg.text_pooling)
    head = sub_state(state, "visual.head.")
    module = ViTHFTextModule(
        image_tower,
        text_tower,
        cfg.embed_dim,
        image_projection_bias="proj.bias" in head,
        text_projection_kind=cfg.text_projection,
        text_pooling=cfg.text_pooling,
    )
    mapped = {
        f"image_tower.{k}": v for k, v in timm_vit_to_hf(trunk, set(image_tower.state_dict()), name).items()
    }
    mapped.update(
        {f"image_projection.{k[len('proj.') :]}": v for k, v in head.items() if k.startswith("proj.")}
    )
    expected_text = set(text_tower.state_dict())
    for key, value in sub_state(state, "text.transformer.").items():
        # Older transformers saved position_ids buffers; BERT's unused pooler comes with older open_clip.
        droppable = key.endswith("position_ids") or key.startswith("pooler.")
        if key in expected_text or not droppable:
            mapped[f"text_tower.{key}"] = value
    mapped.update({f"text_projection.{k}": v for k, v in sub_state(state, "text.proj.").items()})
    if "logit_scale" not in state:
        raise ModelError(f"{files.source}: the checkpoint has no logit_scale; is it a CLIP checkpoint?")
    mapped["logit_scale"] = state["logit_scale"].reshape(())
    known = ("visual.trunk.", "visual.head.proj.", "text.transformer.", "text.proj.")
    extra = sorted(k for k in state if k != "logit_scale" and not k.startswith(known))
    if extra:
        raise unsupported(files.source, f"a checkpoint with {', '.join(extra[:3])}")
    try:
        module.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{files.source}: the weights don't match its config ({str(exc).splitlines()[0]})."
        ) from None
    module.eval()
    return ViTHFTextModel(
        module, tokenizer, cfg.preprocessing, max_text_tokens=cfg.context_length, source=files.source
    )


def build_clip(cfg: OpenClipConfig, state: State, files: OpenClipFiles) -> HFClipModel:
    """A transformers ``CLIPModel`` (as ``HFClipModel``) from a standard open_clip ViT CLIP checkpoint."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    tokenizer_dir = clip_tokenizer_folder(files)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Can't read the CLIP tokenizer in {str(tokenizer_dir)!r}: {exc}") from None
    dims = clip_vit_configs(state, cfg.vision_cfg, cfg.text_cfg)
    # QuickGELU vs GELU is not visible in the weights; getting it wrong silently ruins the embeddings.
    act = "quick_gelu" if cfg.quick_gelu else "gelu"
    specials = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = CLIPConfig(
        text_config={
            **dims["text_config"],
            "hidden_act": act,
            "pad_token_id": tokenizer.pad_token_id,
            **specials,
        },
        vision_config={**dims["vision_config"], "hidden_act": act},
        projection_dim=dims["projection_dim"],
    )
    if config.text_config.max_position_embeddings != cfg.context_length:
        raise ModelError(f"{files.source}: context_length {cfg.context_length} doesn't match the weights.")
    model = CLIPModel(config)
    try:
        model.load_state_dict(clip_vit_to_hf(state), strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{files.source}: the weights don't match its config ({str(exc).splitlines()[0]})."
        ) from None
    model.eval()
    p = cfg.preprocessing
    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[p.resample]
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": p.resize_size or p.image_size},
        crop_size={"height": p.image_size, "width": p.image_size},
        resample=int(resample),
        image_mean=list(p.mean),
        image_std=list(p.std),
    )
    # torchvision's CenterCrop rounds the offset of an odd margin; transformers' processor would floor it.
    return HFClipModel(model, tokenizer, processor, source=files.source, crop_offset=p.crop_offset)


# --- the cache of converted models ---------------------------------------------------------------


def converted_folder(files: OpenClipFiles, config_bytes: bytes) -> Path:
    """The cache folder of this checkpoint's conversion (keyed by the weights file, its config, the converter)."""
    real = files.weights.resolve()  # a Hub snapshot file resolves to its content-addressed blob
    stat = real.stat()
    key = {
        "weights": str(real),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "config": hashlib.sha256(config_bytes).hexdigest(),
        "converter": CONVERTER_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "open_clip" / digest


def _load_converted(folder: Path, device: torch.device, source: str) -> ImageTextModel:
    if read_manifest(folder)["kind"] == VIT_HF_TEXT:
        return ViTHFTextModel.load(folder, device)
    return HFClipModel.load(folder, device, source=source)


def load_open_clip(spec: str | Path, device: torch.device | str = "cpu") -> ImageTextModel:
    """Load an open_clip-format model folder or Hub id, converting it into the cache on first use."""
    files = resolve_files(spec)
    config_bytes = files.config.read_bytes()
    try:
        raw = json.loads(config_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{files.source}: {CONFIG_NAME} is not valid JSON.") from None
    cfg = parse_open_clip_config(raw, f"{files.source} ({CONFIG_NAME})")
    target = converted_folder(files, config_bytes)
    if (target / MANIFEST_NAME).is_file():
        return _load_converted(target, torch.device(device), files.source)
    state = read_state_dict(files.weights)
    if "logit_bias" in state:
        raise unsupported(files.source, "a SigLIP model (sigmoid loss with a logit bias)")
    build = build_vit_hf_text if cfg.family == VIT_HF_TEXT else build_clip
    model = build(cfg, state, files)
    del state
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save(tmp)
        try:
            os.rename(tmp, target)  # one step: a folder with a manifest is a complete conversion
        except OSError:  # another process converted it meanwhile
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model.to(device)
