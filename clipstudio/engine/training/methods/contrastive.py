"""The contrastive training methods: full fine-tuning, LiT (one tower locked) and LoRA.

All three train on (image, text) batches with the loss from ``losses.py``; they differ in which
parameters move. Validation embeds the validation images once per epoch (eval mode, no disk
cache: the weights change) and reuses them for the validation loss and the zero-shot or
retrieval metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from clipstudio.engine.cache.file_index import Progress
from clipstudio.engine.config import RECALL_KS
from clipstudio.engine.embeddings import encode_texts, l2_normalise
from clipstudio.engine.errors import ModelError
from clipstudio.engine.evaluation.retrieval import retrieval_from_embeddings
from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, score_embeddings
from clipstudio.engine.events import VALIDATE_STAGE, no_callback
from clipstudio.engine.models import load_model_folder
from clipstudio.engine.models.fingerprint import IMAGE_TOWER_WORDS
from clipstudio.engine.storage.atomic import atomic_write
from clipstudio.engine.training.augment import BatchTransform
from clipstudio.engine.training.batches import (
    CLASSES,
    Batch,
    ImageSplit,
    Prefetcher,
    TextPool,
    TrainingTexts,
    augment_seed,
    epoch_order,
    global_batches,
    make_batch,
    split_batch,
    text_rng,
    val_text_rng,
)
from clipstudio.engine.training.distributed import (
    current_ranks,
    data_parallel,
    gather_rows,
    gathered_loss,
    rows_of_this_process,
)
from clipstudio.engine.training.losses import contrastive_loss, in_batch_accuracy
from clipstudio.engine.training.methods.base import TrainingMethod
from clipstudio.engine.training.methods.lora import LoraAdapters, apply_lora, merged_copy
from clipstudio.engine.training.trunk_cache import TrunkCache

if TYPE_CHECKING:
    from clipstudio.engine.config import TrainConfig
    from clipstudio.engine.events import Callback, ShouldStop
    from clipstudio.engine.models.base import ImageTextModel
    from clipstudio.engine.prompts import PromptSet
    from clipstudio.engine.training.optimizer import AmpPolicy

ADAPTER_FILE = "adapter.safetensors"  # LoRA checkpoints: unmerged trainable weights, for resuming
_TEXT_WORDS = ("text",)


def tower_modules(module: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
    """The model's top-level children sorted into "image" and "text" towers (projections included)."""
    towers: dict[str, list[tuple[str, nn.Module]]] = {"image": [], "text": []}
    for name, child in module.named_children():
        lower = name.lower()
        if any(w in lower for w in IMAGE_TOWER_WORDS):
            towers["image"].append((name, child))
        elif any(w in lower for w in _TEXT_WORDS):
            towers["text"].append((name, child))
    if not towers["image"] or not towers["text"]:
        raise ModelError(f"Can't tell the image and text towers of {type(module).__name__} apart.")
    return towers


@contextmanager
def training_attention(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Eager attention for a training forward pass on the CPU, then the model's own again.

    torch's CPU flash-attention backward is slower than the plain matmul-softmax-matmul at CLIP's
    short sequences (50 image patches, at most 77 text tokens): a ViT-B/32 training step is 15 %
    faster at batch 8 and 32. The results differ only by float rounding. GPUs keep SDPA's kernels.
    """
    config = getattr(module, "config", None)
    switch = (
        device.type == "cpu"
        and hasattr(module, "set_attn_implementation")
        and getattr(config, "_attn_implementation", None) == "sdpa"
    )
    if not switch:
        yield
        return
    module.set_attn_implementation("eager")
    try:
        yield
    finally:
        module.set_attn_implementation("sdpa")


class ContrastiveMethod(TrainingMethod):
    """Trains ``model`` in place with the contrastive loss; ``cfg.method`` decides what is frozen."""

    min_batch_size = 2  # one image has no negatives: its contrastive loss and gradient are zero

    def __init__(
        self,
        cfg: TrainConfig,
        model: ImageTextModel,
        texts: TrainingTexts,
        train: ImageSplit,
        val: ImageSplit | None,
        val_texts: TrainingTexts | None,
        prompts: PromptSet,
        amp: AmpPolicy,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__(amp=amp, notes=notes)
        self.cfg, self.model, self.texts, self.train, self.val = cfg, model, texts, train, val
        self.val_texts, self.prompts = val_texts, prompts
        self.module = model.torch_module
        self.adapters: LoraAdapters | None = None
        self.frozen_towers: list[str] = []
        self._setup_parameters()
        self.ranks = current_ranks()
        # Several processes (torchrun): the towers run inside DistributedDataParallel.
        self.parallel = data_parallel(model, self._no_grad_towers, model.device) if self.ranks.distributed else None
        self.pool = TextPool.build(model, texts.texts)
        spec = model.image_input_spec()
        if cfg.img_size:
            spec = type(spec)(size=cfg.img_size, mean=spec.mean, std=spec.std)
        self.spec = spec
        self.train_transform = BatchTransform(cfg.augmentation, spec, train=True, seed=cfg.seed)
        self.eval_transform = BatchTransform("none", spec, train=False)
        self.pin = model.device.type == "cuda"
        self.trunk_cache = TrunkCache(len(train)) if self._trunk_is_fixed() else None

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_val(self) -> int:
        return len(self.val) if self.val is not None else 0

    @property
    def used_train(self) -> list[int]:
        return list(self.train.dataset_indices)

    @property
    def used_val(self) -> list[int]:
        return list(self.val.dataset_indices) if self.val is not None else []

    # --- which parameters train ------------------------------------------------------------------
    def _setup_parameters(self) -> None:
        method = self.cfg.method
        towers = tower_modules(self.module)
        if method == "lora":
            self.adapters = apply_lora(self.model, self.cfg.lora)
            adapted = set(self.adapters.target_names)
            for tower, children in towers.items():
                names = [n for n, _ in children]
                if not any(t.split(".")[0] in names for t in adapted):
                    self.frozen_towers.append(tower)  # e.g. EfficientNet: no attention to adapt
            return
        for param in self.module.parameters():
            param.requires_grad_(True)
        locked = {"lock_image": "image", "lock_text": "text"}.get(method)
        if locked:
            self.frozen_towers.append(locked)
            for _, child in towers[locked]:
                for param in child.parameters():
                    param.requires_grad_(False)

    def _trunk_is_fixed(self) -> bool:
        """True when the image trunk gives each training image the same features at every step: nothing
        in it trains (LoRA found no attention there, or the tower is locked) and there is no augmentation."""
        if (
            self.cfg.augmentation != "none"
            or "image" not in self.frozen_towers
            or self.ranks.distributed
            or not self.model.splits_image_tower
        ):
            return False
        trunk = [child for name, child in tower_modules(self.module)["image"] if "projection" not in name]
        return not any(p.requires_grad for child in trunk for p in child.parameters())

    @property
    def _no_grad_towers(self) -> list[str]:
        """Towers whose forward pass needs no gradients (locked whole; LoRA's have adapters)."""
        return [] if self.adapters is not None else list(self.frozen_towers)

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    @property
    def interruptible_module(self) -> nn.Module:
        return self.module

    def set_train_mode(self) -> None:
        """Train mode, except towers that are frozen whole: eval mode keeps their BatchNorm statistics fixed."""
        self.module.train()
        towers = tower_modules(self.module)
        for tower in self.frozen_towers:
            for name, child in towers[tower]:
                if self.adapters is not None and "projection" in name:
                    continue  # a trainable projection is a Linear: no mode-dependent behaviour anyway
                child.eval()
        # BatchNorm keeps its pretrained running statistics while fine-tuning ("frozen BN", as in
        # detection fine-tuning): small clinical batches of one modality would otherwise train with
        # batch statistics far from the ImageNet ones used at eval time, and validation collapses.
        # The BN affine weights still train.
        for child in self.module.modules():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                child.eval()

    # --- training --------------------------------------------------------------------------------
    @property
    def batches_per_pass(self) -> int:
        """Batches in one pass over the training images."""
        return len(global_batches(np.arange(len(self.train)), self.cfg.batch_size, self.ranks.world_size))

    @property
    def micro_batches_per_epoch(self) -> int:
        if self.cfg.steps is None:
            return self.batches_per_pass
        # cfg.steps spread over the epochs: an epoch may go over the training images several times.
        return math.ceil(self.cfg.steps * self.cfg.grad_accum / self.cfg.epochs)

    def batches(self, epoch: int, start: int) -> Prefetcher:
        # Passes over the training images are numbered through the whole run, each with its own order,
        # augmentation and texts; with one pass per epoch (no cfg.steps) the pass number is the epoch.
        per_pass, per_epoch = self.batches_per_pass, self.micro_batches_per_epoch
        first = (epoch - 1) * per_epoch
        plans: dict[int, list[np.ndarray]] = {}

        def make(k: int) -> Batch:
            earlier_passes, b = divmod(first + k, per_pass)
            number = earlier_passes + 1
            if number not in plans:
                plans.clear()  # passes come in order: one plan at a time
                order = epoch_order(self.cfg.seed, number, len(self.train))
                plans[number] = global_batches(order, self.cfg.batch_size, self.ranks.world_size)
            # Seeded per batch: the prefetch thread may run ahead without disturbing a resume.
            self.train_transform.generator.manual_seed(augment_seed(self.cfg.seed, number, b))
            rng = text_rng(self.cfg.seed, number, b)
            return make_batch(
                self.train, plans[number][b], self.texts, self.pool, self.train_transform, rng, pin=self.pin,
                rank=self.ranks.rank, world=self.ranks.world_size,
            )

        return Prefetcher(make, start, per_epoch)

    def split_batch(self, batch: Batch, size: int) -> list[Batch]:
        return split_batch(batch, size)

    def images_in(self, batch: Batch) -> int:
        return batch.size

    def step_loss(self, batch: Batch) -> tuple[torch.Tensor, float, int]:
        device = self.model.device
        tokens = {k: v.to(device, non_blocking=True) for k, v in batch.tokens.items()}
        if self.parallel is not None:
            with self.amp.autocast(), training_attention(self.module, device):
                img, txt, scale = self.parallel(batch.pixels.to(device, non_blocking=True), tokens)
            loss, acc = gathered_loss(img, txt, batch.keys.to(device), scale, kind=self.cfg.loss)
            return loss, acc, batch.size
        with self.amp.autocast(), training_attention(self.module, device):
            # Kept trunk features: only the images not kept yet go to the device.
            img = self._cached_trunk_images(batch, batch.pixels)
            if img is None:
                with torch.no_grad() if "image" in self._no_grad_towers else nullcontext():
                    img = self.model.forward_images(batch.pixels.to(device, non_blocking=True))
            with torch.no_grad() if "text" in self._no_grad_towers else nullcontext():
                txt = self._batch_texts(batch, tokens)
        logits = self.model.logit_scale_tensor().float() * img.float() @ txt.float().t()
        keys = batch.keys.to(device)
        loss = contrastive_loss(logits, keys, kind=self.cfg.loss)
        return loss, in_batch_accuracy(logits, keys), batch.size

    def _batch_texts(self, batch: Batch, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's text embeddings, each distinct text encoded once.

        Class data pairs every image of a class with the same prompt in a step, so a batch of 32 holds
        as many distinct texts as classes: the text tower runs on those (as CLIP-LoRA encodes each
        class's prompt once per step) and their embeddings are repeated. Without dropout this is the
        same tensor as encoding every row; with it, the copies of one text share a dropout mask.
        """
        if batch.text_ids is None:
            return self.model.forward_texts(tokens)
        distinct, first, inverse = np.unique(batch.text_ids, return_index=True, return_inverse=True)
        if len(distinct) == batch.size:
            return self.model.forward_texts(tokens)
        index = torch.as_tensor(first, device=self.model.device)
        once = self.model.forward_texts({k: v.index_select(0, index) for k, v in tokens.items()})
        return once[torch.as_tensor(inverse.reshape(-1), device=once.device)]

    def _cached_trunk_images(self, batch: Batch, pixels: torch.Tensor) -> torch.Tensor | None:
        """The batch's image embeddings from kept trunk features (None: the trunk isn't cached)."""
        if self.trunk_cache is None or batch.rows is None:
            return None

        def trunk(part: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.model.forward_image_trunk(part)

        features = self.trunk_cache.features(batch.rows, pixels, trunk)
        if features is None:
            return None
        with torch.no_grad() if "image" in self._no_grad_towers else nullcontext():
            return self.model.forward_images_from_trunk(features)

    # --- validation ------------------------------------------------------------------------------
    def evaluate(self, should_stop: ShouldStop, progress: Callback = no_callback) -> dict[str, float] | None:
        if self.val is None or not len(self.val):
            return {}
        was_training = self.module.training
        self.module.eval()
        try:
            image_emb = self._embed_val_images(should_stop, progress)
            if image_emb is None:
                return None
            if self.texts.kind == CLASSES:
                return self._class_metrics(image_emb)
            return self._pair_metrics(image_emb)
        finally:
            self.module.train(was_training)
            if was_training:
                self.set_train_mode()

    def _embed_val_images(self, should_stop: ShouldStop, progress: Callback) -> np.ndarray | None:
        """The validation images' embeddings; several processes embed a block each and gather them."""
        n, world = len(self.val), self.ranks.world_size
        rows = rows_of_this_process(n) if self.ranks.distributed else range(n)
        chunks = [np.zeros((0, self.model.embed_dim), dtype=np.float32)]
        device = self.model.device
        ticker = Progress(progress, VALIDATE_STAGE, n)
        ticker.update(0, force=True)
        with torch.no_grad():
            for start in range(rows.start, rows.stop, self.cfg.batch_size):
                if should_stop():
                    return None
                stop = min(start + self.cfg.batch_size, rows.stop)
                pixels = self.eval_transform(np.asarray(self.val.array[start:stop]))
                with self.amp.autocast():
                    emb = self.model.forward_images(pixels.to(device, non_blocking=True))
                chunks.append(emb.float().cpu().numpy())
                done = min(n, (stop - rows.start) * world)  # the first process's share stands for all
                ticker.update(done, force=stop >= rows.stop)
        embeddings = np.concatenate(chunks)
        if self.ranks.distributed:
            embeddings = gather_rows(embeddings, n)
        return l2_normalise(embeddings)

    def _val_loss(self, image_emb: np.ndarray, text_emb: np.ndarray, texts: TrainingTexts) -> float:
        """The training loss on validation batches (fixed order and text choice), from embeddings.

        The batches are global batches (``batch_size`` per process), as one process would take them.
        """
        scale = self.model.logit_scale
        total, count = 0.0, 0
        rows = np.arange(len(self.val))
        size = self.cfg.batch_size * self.ranks.world_size
        for k, start in enumerate(range(0, len(rows), size)):
            batch = rows[start : start + size]
            if len(batch) < 2:
                continue
            ids, keys = texts.choose(self.val, batch, val_text_rng(self.cfg.seed, k))
            logits = scale * torch.from_numpy(image_emb[batch] @ text_emb[ids].T)
            loss = contrastive_loss(logits, torch.from_numpy(keys), kind=self.cfg.loss)
            total += float(loss) * len(batch)
            count += len(batch)
        return total / count if count else float("nan")

    def _class_metrics(self, image_emb: np.ndarray) -> dict[str, float]:
        text_emb = l2_normalise(encode_texts(self.model, self.texts.texts))
        class_emb = class_text_embeddings(self.model, self.texts.class_names, self.prompts)
        result = score_embeddings(
            image_emb,
            self.val.labels,
            class_emb,
            self.texts.class_names,
            logit_scale=self.model.logit_scale,
            n_bootstrap=0,
            with_predictions=False,
        )
        return {
            "val_loss": self._val_loss(image_emb, text_emb, self.texts),
            "val_acc": float(result.accuracy),
            "val_balanced_acc": float(result.balanced_accuracy),
        }

    def _pair_metrics(self, image_emb: np.ndarray) -> dict[str, float]:
        texts = self.val_texts
        text_emb = l2_normalise(encode_texts(self.model, texts.texts))
        owners = np.concatenate([np.full(len(c), row) for row, c in enumerate(self.val.captions)])
        caption_rows = np.concatenate(self.val.captions)
        result = retrieval_from_embeddings(image_emb, text_emb[caption_rows], owners, ks=RECALL_KS)
        metrics = {"val_loss": self._val_loss(image_emb, text_emb, texts)}
        recalls = []
        for direction, values in (("i2t", result.image_to_text), ("t2i", result.text_to_image)):
            for k in RECALL_KS:
                value = values.get(f"R@{k}")
                if value is not None:
                    metrics[f"val_{direction}_R@{k}"] = float(value)
                    recalls.append(float(value))
        metrics["val_acc"] = metrics.get("val_i2t_R@1", float("nan"))
        metrics["val_mean_recall"] = float(np.mean(recalls)) if recalls else float("nan")
        return metrics

    # --- checkpoints -----------------------------------------------------------------------------
    def save_model(self, folder: Path) -> None:
        """The model as its own ``save`` writes it (LoRA: adapters merged), plus LoRA's unmerged weights."""
        if self.adapters is None:
            self.model.save(folder)
            return
        merged_copy(self.model, self.adapters).save(folder)
        state = {
            k: v.detach().cpu().contiguous().clone()
            for k, v in self.adapters.trainable_state(self.module).items()
        }
        atomic_write(folder / ADAPTER_FILE, lambda p: save_file(state, str(p)))

    def save_run_files(self, run_dir: Path) -> None:
        """Nothing: every checkpoint holds the whole model."""

    def load_weights(self, checkpoint: Path) -> None:
        """Continue from a checkpoint's weights (the model must be the run's starting model, set up alike)."""
        device = self.model.device
        if self.adapters is not None:
            try:
                state = load_file(str(checkpoint / ADAPTER_FILE))
            except (OSError, SafetensorError) as exc:
                raise ModelError(
                    f"{checkpoint / ADAPTER_FILE}: the LoRA weights can't be read ({exc})."
                ) from None
            missing = set(self.adapters.trainable_state(self.module)) - set(state)
            if missing:
                raise ModelError(f"{checkpoint}: the LoRA weights lack {sorted(missing)[:3]}.")
            self.module.load_state_dict(state, strict=False)
            return
        saved = load_model_folder(checkpoint, torch.device("cpu"))
        self.module.load_state_dict(saved.torch_module.state_dict(), strict=True)
        self.model.to(device)
