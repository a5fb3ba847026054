"""What the trainer feeds the model: splits, decoded images, texts tokenised once, and batches.

Class data pairs each image with its class prompts (one text per class per step, drawn from the
prompt ensemble); pair data with its captions (one per step when an image has several). Every
text is tokenised once up front; a batch gathers token rows and trims the padding.

Randomness is addressed by position: the data order of an epoch and the text choice and
augmentation of batch ``k`` come from seeds derived from ``(seed, epoch, k)``. A background
thread can prepare batches ahead, and a resumed run needs nothing but the position to produce
exactly the same batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.dataset import Dataset, Problem
from clipstudio.engine.data.splits import train_val_indices
from clipstudio.engine.errors import DataError
from clipstudio.engine.prompts import PromptSet

CLASSES = "classes"
PAIRS = "pairs"

# Purposes mixed into derived seeds, so streams for different jobs never coincide.
_ORDER, _TEXT, _AUGMENT, _VAL_TEXT = 1, 2, 3, 4


def derived_seed(*parts: int) -> int:
    """A 63-bit seed determined by ``parts`` (e.g. run seed, epoch, batch, purpose)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled row order of one epoch."""
    return np.random.default_rng(derived_seed(seed, epoch, _ORDER)).permutation(n)


def micro_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of ``order``; a last batch of one image is dropped (it has no negatives)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches


def padded_order(order: np.ndarray, world: int) -> np.ndarray:
    """``order`` lengthened to a multiple of ``world`` by repeating its start, as DistributedSampler pads."""
    short = -len(order) % world
    if not short or not len(order):
        return order
    return np.concatenate([order, np.resize(order, short)])


def global_batches(order: np.ndarray, batch_size: int, world: int = 1) -> list[np.ndarray]:
    """The epoch's batches over all ``world`` processes: ``batch_size`` images per process and step.

    One process: ``micro_batches(order, batch_size)``. Several: the order is padded as
    DistributedSampler pads it and cut into global batches of ``batch_size * world``; process r
    trains on ``batch[r::world]`` (``rank_part``), so each step's global batch holds the same images
    as one process with batch ``batch_size * world`` would see.
    """
    return micro_batches(padded_order(order, world), batch_size * world)


def rank_part(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Process ``rank``'s rows of a global batch (DistributedSampler's stride)."""
    return rows[rank::world]


def training_splits(
    dataset: Dataset,
    data: DataConfig,
    *,
    train_indices: list[int] | None = None,
    val_indices: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """(train, val) sample indices. The test split is never used.

    Explicit ``train_indices``/``val_indices`` (a cross-validation fold) win. Otherwise the
    dataset's own "train"/"val" splits; without a "val" split, ``data.val_fraction`` of train is
    held out (stratified by class, patients kept together); without any split, the whole dataset
    is split that way. ``data.shots_per_class`` then keeps that many training images per class.
    """
    if train_indices is not None:
        train = sorted(set(int(i) for i in train_indices))
        val = sorted(set(int(i) for i in (val_indices or [])))
        if set(train) & set(val):
            raise DataError("The training and validation indices overlap.")
        return train, val
    train, val = train_val_indices(
        dataset, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=data.seed
    )
    if data.shots_per_class is not None:
        train = few_shot_indices(dataset, train, data.shots_per_class, seed=data.seed)
    return train, val


def few_shot_indices(dataset: Dataset, indices: list[int], shots: int, *, seed: int) -> list[int]:
    """``shots`` of ``indices`` per class (all of a class that has fewer), drawn with ``seed``; sorted.

    A class's draw depends only on the seed and that class's images, and K shots are the first K
    of the draw, so the 2-shot images are among the 4-shot ones (K-shot curves add images, never swap them).
    Images without a class (captions) are kept.
    """
    by_class: dict[int | None, list[int]] = {}
    for i in indices:
        by_class.setdefault(dataset.samples[i].label, []).append(i)
    kept: list[int] = []
    for label, members in by_class.items():
        if label is None:
            kept += members
            continue
        order = np.random.default_rng([seed, label]).permutation(len(members))
        kept += [members[j] for j in order[:shots]]
    return sorted(kept)


def data_kind(dataset: Dataset) -> str:
    """CLASSES (class labels, prompts as texts) or PAIRS (captions); DataError when neither."""
    if dataset.is_classification and not dataset.has_captions:
        return CLASSES
    if dataset.has_captions:
        return PAIRS
    where = dataset.source or dataset.root
    if dataset.class_names and len(dataset.class_names) < 2:
        raise DataError(
            f"{where}: training on classes needs at least 2 classes; found {len(dataset.class_names)}."
        )
    raise DataError(f"{where}: training needs class folders (2+ classes) or images with captions.")


@dataclass
class TextPool:
    """Every text the run can pair with an image, tokenised once."""

    texts: list[str]
    tokens: dict[str, torch.Tensor]  # CPU, one row per text, padded to the longest
    lengths: np.ndarray  # real tokens per text (attention mask sums), to trim batch padding

    @classmethod
    def build(cls, model: Any, texts: list[str], *, chunk: int = 1024) -> TextPool:
        parts = [model.tokenize(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
        width = max(p["input_ids"].shape[1] for p in parts)
        tokens: dict[str, torch.Tensor] = {}
        for key in parts[0]:
            rows = []
            for p in parts:
                t = p[key].cpu()
                if t.shape[1] < width:
                    # Padding value is irrelevant: padded positions are masked and trimmed.
                    t = torch.nn.functional.pad(t, (0, width - t.shape[1]))
                rows.append(t)
            tokens[key] = torch.cat(rows)
        mask = tokens.get("attention_mask")
        lengths = mask.sum(dim=1).numpy() if mask is not None else np.full(len(texts), width)
        return cls(texts=list(texts), tokens=tokens, lengths=lengths)

    def gather(self, ids: np.ndarray) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(ids, dtype=torch.long)
        width = int(self.lengths[ids].max()) if len(ids) else 1
        return {k: v.index_select(0, index)[:, :width] for k, v in self.tokens.items()}


@dataclass
class ImageSplit:
    """The decoded images of one split, and which texts each may be paired with."""

    array: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    dataset_indices: list[int]  # row -> sample index in the dataset
    labels: np.ndarray | None  # (N,) class index (class data)
    captions: list[np.ndarray]  # pairs: row -> text ids in the pool; class data: empty

    def __len__(self) -> int:
        return len(self.dataset_indices)


@dataclass
class TrainingTexts:
    """The text side of a run: class prompts (class data) or unique captions (pairs)."""

    kind: str
    class_names: list[str]
    class_texts: dict[str, list[str]]  # class data: class -> its prompt texts
    texts: list[str]  # unique texts; for class data grouped by class
    class_text_ids: list[np.ndarray] = field(default_factory=list)  # class -> its text ids

    @classmethod
    def for_classes(cls, class_names: list[str], prompts: PromptSet) -> TrainingTexts:
        class_texts = {name: prompts.texts_for(name) for name in class_names}
        texts, ids = [], []
        for name in class_names:
            ids.append(np.arange(len(texts), len(texts) + len(class_texts[name])))
            texts += class_texts[name]
        return cls(CLASSES, list(class_names), class_texts, texts, ids)

    @classmethod
    def for_captions(cls, dataset: Dataset, rows: list[int]) -> tuple[TrainingTexts, dict[str, int]]:
        index: dict[str, int] = {}
        for i in rows:
            for caption in dataset.samples[i].captions:
                index.setdefault(caption, len(index))
        return cls(PAIRS, list(dataset.class_names), {}, list(index)), index

    def choose(
        self, split: ImageSplit, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(text id, positive key) per row. Class data: one text per class for the whole batch."""
        if self.kind == CLASSES:
            labels = split.labels[rows]
            pick = {int(c): int(rng.integers(len(self.class_text_ids[c]))) for c in np.unique(labels)}
            ids = np.array([self.class_text_ids[c][pick[int(c)]] for c in labels], dtype=np.int64)
            return ids, labels.astype(np.int64)
        ids = np.array(
            [caps[rng.integers(len(caps))] for caps in (split.captions[r] for r in rows)], dtype=np.int64
        )
        return ids, ids  # identical captions share a text id, hence are positives of each other


def image_split(
    dataset: Dataset,
    indices: list[int],
    decoded_array: np.ndarray,
    decoded_rows: dict[int, int],
    caption_ids: dict[str, int] | None,
) -> ImageSplit:
    """The rows of ``decoded_array`` holding ``indices`` (images that failed to decode are left out)."""
    kept = [i for i in indices if i in decoded_rows]
    if caption_ids is not None:
        kept = [i for i in kept if any(c in caption_ids for c in dataset.samples[i].captions)]
    rows = np.array([decoded_rows[i] for i in kept], dtype=np.int64)
    contiguous = len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
    # A contiguous run stays a memmap view; otherwise gather once into RAM.
    array = decoded_array[rows[0] : rows[0] + len(rows)] if contiguous else np.asarray(decoded_array[rows])
    labels = None
    if dataset.is_classification:
        labels = np.array([dataset.samples[i].label for i in kept], dtype=np.int64)
    captions = []
    if caption_ids is not None:
        captions = [
            np.array(
                [caption_ids[c] for c in dataset.samples[i].captions if c in caption_ids], dtype=np.int64
            )
            for i in kept
        ]
    return ImageSplit(array=array, dataset_indices=kept, labels=labels, captions=captions)


@dataclass
class Batch:
    pixels: torch.Tensor  # (B, 3, S, S) float, normalised (pinned on CUDA runs)
    tokens: dict[str, torch.Tensor]
    keys: torch.Tensor  # (B,) positives share a key
    size: int
    rows: np.ndarray | None = None  # (B,) the images' rows in their ImageSplit
    text_ids: np.ndarray | None = None  # (B,) each image's text in the TextPool


def split_batch(batch: Batch, size: int) -> list[Batch]:
    """``batch`` in consecutive parts of at most ``size`` images (views, no copies)."""
    if batch.size <= size:
        return [batch]
    return [
        Batch(
            pixels=batch.pixels[i : i + size],
            tokens={k: v[i : i + size] for k, v in batch.tokens.items()},
            keys=batch.keys[i : i + size],
            size=min(size, batch.size - i),
            rows=None if batch.rows is None else batch.rows[i : i + size],
            text_ids=None if batch.text_ids is None else batch.text_ids[i : i + size],
        )
        for i in range(0, batch.size, size)
    ]


def make_batch(
    split: ImageSplit,
    rows: np.ndarray,
    texts: TrainingTexts,
    pool: TextPool,
    transform: Callable[..., torch.Tensor],
    rng: np.random.Generator,
    *,
    pin: bool = False,
    rank: int = 0,
    world: int = 1,
) -> Batch:
    """The batch of ``rows``; with ``world`` processes, process ``rank``'s part of the global batch ``rows``.

    Texts and augmentation are drawn for the whole global batch, so the parts together are exactly
    the batch one process would build from ``rows``.
    """
    ids, keys = texts.choose(split, rows, rng)
    within = None
    if world > 1:
        within = (len(rows), np.arange(rank, len(rows), world))
        rows, ids, keys = (rank_part(a, rank, world) for a in (rows, ids, keys))
    order = np.sort(rows)  # ascending reads from the memmap, then back to the batch order
    inverse = np.argsort(np.argsort(rows))
    images = np.asarray(split.array[order])[inverse]
    pixels = transform(images) if within is None else transform(images, within=within)
    tokens = pool.gather(ids)
    keys_t = torch.from_numpy(keys)
    if pin:
        pixels = pixels.pin_memory()
        tokens = {k: v.pin_memory() for k, v in tokens.items()}
    return Batch(pixels=pixels, tokens=tokens, keys=keys_t, size=len(rows), rows=np.asarray(rows), text_ids=ids)


def augment_seed(seed: int, epoch: int, batch: int) -> int:
    return derived_seed(seed, epoch, batch, _AUGMENT)


def text_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    return np.random.default_rng(derived_seed(seed, epoch, batch, _TEXT))


def val_text_rng(seed: int, batch: int) -> np.random.Generator:
    return np.random.default_rng(derived_seed(seed, batch, _VAL_TEXT))


class Prefetcher:
    """Yields ``make(k)`` for k in ``range(start, stop)``, computed one or two ahead in a thread."""

    def __init__(self, make: Callable[[int], Any], start: int, stop: int, *, depth: int = 2):
        self._make, self._next, self._stop = make, start, stop
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start,), name="batch-prefetch", daemon=True)
        self._thread.start()

    def _run(self, start: int) -> None:
        for k in range(start, self._stop):
            if self._closed.is_set():
                return
            try:
                item = (k, self._make(k), None)
            except BaseException as exc:  # handed to the consumer, re-raised there
                item = (k, None, exc)
            while not self._closed.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        while self._next < self._stop:
            k, value, exc = self._queue.get()
            if exc is not None:
                raise exc
            self._next = k + 1
            yield k, value

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def problems_summary(problems: list[Problem]) -> str:
    if not problems:
        return ""
    first = problems[0]
    return (
        f"{len(problems)} image(s) could not be read and are left out (first: {first.path}: {first.reason})."
    )
