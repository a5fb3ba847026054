"""Everything a run needs before its first step: run folder, device, data and splits, model, training method."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from clipstudio import __version__
from clipstudio.engine.cache.pixels import decode_to_array
from clipstudio.engine.config import TrainConfig
from clipstudio.engine.data.corrections import corrections_text
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.data.readers import load_dataset_from_config
from clipstudio.engine.data.splits import apply_group_regex
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.events import Callback, MessageLogged, ShouldStop
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.fingerprint import image_encoder_record
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.models.tip_adapter_head import TipAdapterModel
from clipstudio.engine.prompts import PromptSet, prompt_set_from_config
from clipstudio.engine.runs.layout import (
    CORRECTIONS_FILE,
    LATEST,
    default_run_dir,
    find_checkpoint,
    is_run_folder,
)
from clipstudio.engine.runtime.device import select_device
from clipstudio.engine.storage.atomic import atomic_write_json, atomic_write_text
from clipstudio.engine.training.batches import (
    CLASSES,
    PAIRS,
    TrainingTexts,
    data_kind,
    image_split,
    problems_summary,
    training_splits,
)
from clipstudio.engine.training.image_size import (
    FIXED_SIZE_KINDS,
    ImageSizeChoice,
    choose_image_size,
    median_short_side,
)
from clipstudio.engine.training.methods.base import TrainingMethod
from clipstudio.engine.training.methods.contrastive import ContrastiveMethod
from clipstudio.engine.training.methods.linear_probe import LinearProbeMethod, encode_probe_splits
from clipstudio.engine.training.methods.tip_adapter import TipAdapterFMethod, TipAdapterMethod
from clipstudio.engine.training.optimizer import amp_policy

# Methods that leave the image encoder as it was: their runs record it, to share its cached image embeddings.
FROZEN_IMAGE_METHODS = ("linear_probe", "lock_image", "tip_adapter", "tip_adapter_f")
# Methods that fit a classifier on the frozen model's cached image embeddings (config.CLASS_DATA_METHODS).
EMBEDDING_METHODS = {"linear_probe": LinearProbeMethod, "tip_adapter": TipAdapterMethod, "tip_adapter_f": TipAdapterFMethod}


def training_device(cfg: TrainConfig) -> torch.device:
    """``model.device``, where "auto" and "cuda" mean CUDA GPU ``gpu_id`` (see ``select_device``)."""
    return select_device(cfg.model.device, gpu_id=cfg.gpu_id)


def prepare_run_dir(cfg: TrainConfig) -> tuple[Path, Path | None]:
    """(run folder, run folder to resume from or None). Refuses to overwrite another run."""
    resume = Path(os.path.abspath(cfg.resume_from)) if cfg.resume_from else None
    if resume is not None and not is_run_folder(resume):
        raise ConfigError(f"resume_from {str(resume)!r} is not a training run folder.")
    if cfg.output:
        run_dir = Path(os.path.abspath(Path(cfg.output).expanduser()))
    else:
        run_dir = resume or default_run_dir(cfg.method)
    # A run that ended before its first checkpoint has nothing worth keeping: start it afresh.
    has_run = is_run_folder(run_dir) and find_checkpoint(run_dir, LATEST) is not None
    if has_run and (resume is None or not _same(run_dir, resume)):
        raise ConfigError(
            f"{str(run_dir)!r} already holds a training run; choose another output folder or resume it."
        )
    if run_dir.is_file():
        raise ConfigError(f"output {str(run_dir)!r} is a file, not a folder.")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resume


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass
class RunData:
    """The dataset of a run and how it is used."""

    dataset: Dataset
    kind: str  # train_data.CLASSES or PAIRS
    train_indices: list[int]
    val_indices: list[int]
    prompts: PromptSet
    start_spec: str  # the model training starts from
    notes: list[str] = field(default_factory=list)
    image_size: ImageSizeChoice | None = None  # contrastive methods: the training image size (build_method)


def load_training_data(
    cfg: TrainConfig,
    dataset: Dataset | None,
    *,
    train_indices: list[int] | None,
    val_indices: list[int] | None,
    resume_info: dict[str, Any] | None,
) -> RunData:
    if dataset is None:
        dataset = load_dataset_from_config(cfg.data)
    if cfg.data.group_regex:
        dataset = apply_group_regex(dataset, cfg.data.group_regex)
    kind = data_kind(dataset)
    if cfg.method in EMBEDDING_METHODS and not dataset.is_classification:
        raise ConfigError(
            f"The {cfg.method} method needs class data (class folders or labelled images); "
            "for image-text pairs use 'full', 'lock_image', 'lock_text' or 'lora'."
        )
    train, val = training_splits(dataset, cfg.data, train_indices=train_indices, val_indices=val_indices)
    if len(train) < 2:
        raise DataError(
            f"{dataset.source or dataset.root}: training needs at least 2 training images; found {len(train)}."
        )
    labelled = "with class labels" if kind == CLASSES else "with captions"
    notes = [f"{len(train)} images to train on and {len(val)} to validate on, {labelled}."]
    if cfg.data.shots_per_class is not None and train_indices is None:
        notes.append(
            f"Few-shot: at most {cfg.data.shots_per_class} training image(s) per class, "
            f"drawn with split seed {cfg.data.seed}."
        )
    if resume_info is not None:
        start_spec = str(resume_info["start_model"])
        if resume_info.get("class_names", []) != list(dataset.class_names):
            raise ConfigError("The dataset's classes differ from those of the run being resumed.")
    else:
        start_spec = cfg.model.spec
    prompts = prompt_set_from_config(cfg.prompts, name="training")
    return RunData(dataset, kind, train, val, prompts, start_spec, notes)


def load_start_model(cfg: TrainConfig, spec: str, device: torch.device) -> ImageTextModel:
    """The model training starts from: ``load_model(spec)``, or a run folder's trained model."""
    if is_run_folder(spec):
        model = load_run_model(spec, "best", device=str(device))
        if isinstance(model, LinearProbeModel | TipAdapterModel):
            what = "linear-probe" if isinstance(model, LinearProbeModel) else "Tip-Adapter"
            raise ConfigError(f"{spec!r} is a {what} run; fine-tune its base model instead.")
        return model
    return load_model(spec, device=str(device))


def build_method(
    cfg: TrainConfig,
    model: ImageTextModel,
    data: RunData,
    *,
    callback: Callback,
    should_stop: ShouldStop,
    device: torch.device,
) -> TrainingMethod | None:
    """The training method of ``cfg.method``, its images read or embedded; None when cancelled meanwhile."""
    if cfg.method in EMBEDDING_METHODS:
        return _on_embeddings(cfg, model, data, callback=callback, should_stop=should_stop)
    return _contrastive(cfg, model, data, callback=callback, should_stop=should_stop, device=device)


def _on_embeddings(cfg, model, data: RunData, *, callback, should_stop) -> TrainingMethod | None:
    embedded = encode_probe_splits(
        model,
        data.dataset,
        data.train_indices,
        data.val_indices,
        batch_size=max(cfg.batch_size, 64),
        num_workers=cfg.num_workers,
        callback=callback,
        should_stop=should_stop,
    )
    if embedded.cancelled:
        return None
    notes = [problems_summary(embedded.problems)] if embedded.problems else []
    return EMBEDDING_METHODS[cfg.method](
        cfg, model, data.dataset.class_names, embedded.train, embedded.val, data.prompts, notes=notes
    )


def _contrastive(cfg, model, data: RunData, *, callback, should_stop, device) -> ContrastiveMethod | None:
    dataset = data.dataset
    native = model.image_input_spec().size
    resizable = model.kind not in FIXED_SIZE_KINDS and hasattr(model, "preprocessing")
    if cfg.img_size and cfg.img_size != native and model.kind in FIXED_SIZE_KINDS:
        # A ViT's position embeddings are sized for its own input; CNN backbones take any size.
        raise ConfigError(
            f"This CLIP model takes {native} px images; leave img_size empty (got {cfg.img_size})."
        )
    source_side = None
    # A resume trains at the run's own size: new runs record an automatic size in their config, and runs
    # from before it was chosen automatically trained at the model's own size.
    if not cfg.img_size and not cfg.resume_from and device.type == "cpu" and resizable:
        source_side = median_short_side([dataset.samples[i].path for i in data.train_indices])
    data.image_size = choose_image_size(
        cfg.img_size, native, device=device, resizable=resizable, source_side=source_side
    )
    size = data.image_size.size
    if data.image_size.automatic:
        callback(MessageLogged(level="info", text=data.image_size.note))
        cfg = dataclasses.replace(cfg, img_size=size)  # the method trains and validates at this size
    if size != native and hasattr(model, "preprocessing"):
        # The fine-tuned model is used at the size it was trained at: its saved checkpoints (and so
        # zero-shot, eval and retrieval with the run) preprocess images to `size`, not the original.
        model.preprocessing = dataclasses.replace(model.preprocessing, image_size=size, resize_size=None)
    wanted = data.train_indices + data.val_indices
    decoded = decode_to_array(
        [dataset.samples[i].path for i in wanted],
        size,
        crop=model.image_preprocessing(),  # the pixels evaluation crops, so training sees the same
        num_workers=cfg.num_workers,
        callback=callback,
        should_stop=should_stop,
    )
    if decoded.cancelled:
        return None
    rows = {wanted[position]: row for row, position in enumerate(decoded.indices)}
    if data.kind == CLASSES:
        texts = TrainingTexts.for_classes(dataset.class_names, data.prompts)
        val_texts, train_ids, val_ids = texts, None, None
    else:
        texts, train_ids = TrainingTexts.for_captions(dataset, data.train_indices)
        val_texts, val_ids = TrainingTexts.for_captions(dataset, data.val_indices)
    train = image_split(dataset, data.train_indices, decoded.array, rows, train_ids)
    val = image_split(dataset, data.val_indices, decoded.array, rows, val_ids) if data.val_indices else None
    if len(train) < 2:
        raise DataError(f"{dataset.source or dataset.root}: fewer than 2 training images could be read.")
    notes = [problems_summary(decoded.problems)] if decoded.problems else []
    return ContrastiveMethod(
        cfg, model, texts, train, val, val_texts, data.prompts, amp_policy(device, cfg.amp), notes
    )


def recorded_config(cfg: TrainConfig, data: RunData) -> TrainConfig:
    """The config as the run folder records it: the starting model spec and an automatic image size made explicit,
    so a resume trains at the same size on any device."""
    recorded = copy.deepcopy(cfg)
    recorded.model.spec = data.start_spec
    if data.image_size is not None and data.image_size.automatic:
        recorded.img_size = data.image_size.size
    return recorded


def run_info(cfg: TrainConfig, data: RunData, method: TrainingMethod) -> dict[str, Any]:
    info: dict[str, Any] = {
        "method": cfg.method,
        "start_model": data.start_spec,
        "data_kind": data.kind,
        "data_path": str(data.dataset.source or data.dataset.root),
        "class_names": list(data.dataset.class_names),
        "n_train": method.n_train,
        "n_val": method.n_val,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "clipstudio_version": __version__,
    }
    if data.dataset.corrections:
        info["corrections_applied"] = len(data.dataset.corrections)  # copied to CORRECTIONS_FILE
    if data.image_size is not None:
        info["img_size"] = data.image_size.size  # what the images were trained at; checkpoints keep it too
    if data.kind == CLASSES or cfg.method in EMBEDDING_METHODS:
        info["class_texts"] = {name: data.prompts.texts_for(name) for name in data.dataset.class_names}
    if cfg.method in FROZEN_IMAGE_METHODS:
        # Written before a resume restores any weights: this is the starting model's image encoder.
        record = image_encoder_record(method.model)
        if record is not None:
            info["image_encoder"] = record
    return info


def write_splits(path: Path, data: RunData, method: TrainingMethod) -> None:
    """The images each split actually used (after unreadable ones were left out)."""
    samples = data.dataset.samples
    atomic_write_json(
        path,
        {
            "train": [str(samples[i].path) for i in method.used_train],
            "val": [str(samples[i].path) for i in method.used_val],
        },
    )


def write_run_corrections(run_dir: Path, data: RunData) -> None:
    """Copy the dataset corrections the run trains with into the run folder (none: no file, as run.json says)."""
    path = run_dir / CORRECTIONS_FILE
    if data.dataset.corrections:
        atomic_write_text(path, corrections_text(data.dataset.corrections))
    else:
        path.unlink(missing_ok=True)  # a resume without them: the earlier start's copy no longer holds


__all__ = ["PAIRS", "RunData", "build_method", "load_training_data", "prepare_run_dir"]
