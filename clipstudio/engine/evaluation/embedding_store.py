"""Image and text embeddings kept in memory, so re-scoring and repeated searches encode only what is new.

Encoding images is the slow part of every evaluation (tens of seconds for a few hundred images on a
CPU); encoding a handful of prompt texts is instant. An ``EmbeddingStore`` encodes an image list
once per model (through the on-disk ``EmbeddingCache`` when it has one) and then hands back the
same arrays. The GUI keeps one for the app and empties it when another dataset is opened; a CLI
command makes one for its run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from clipstudio.engine.cache.vectors import EmbeddingCache, TextEmbeddingCache
from clipstudio.engine.config import EVAL_BATCH_SIZE
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.embeddings import EncodedImages, encode_image_files, encode_texts, l2_normalise
from clipstudio.engine.errors import DataError
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback

if TYPE_CHECKING:
    from clipstudio.engine.models.base import ImageTextModel


class EmbeddingStore:
    """Embeddings per (model key, image list or text list), least recently used dropped first.

    Images are keyed by ``model.image_fingerprint()``: a run that left the image encoder as it was
    (a linear probe, a locked image tower) shares its starting model's images, in memory and on disk.

    Thread-safe: worker jobs call it. ``cache`` is the on-disk image cache (None: encode without one).
    ``text_cache`` holds single texts (prompts), so re-scoring after an edit encodes only edited texts.
    """

    def __init__(self, cache: EmbeddingCache | None = None, *, max_entries: int = 4) -> None:
        self.disk_cache = cache
        self.text_cache = TextEmbeddingCache()
        self._max_entries = max_entries
        self._images: OrderedDict[tuple, EncodedImages] = OrderedDict()
        self._texts: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._texts.clear()
        self.text_cache = TextEmbeddingCache()

    def image_embeddings(
        self,
        model: ImageTextModel,
        paths: list,
        *,
        batch_size: int = EVAL_BATCH_SIZE,
        callback: Callback = no_callback,
        should_stop: ShouldStop = never_stop,
        encode: Callable[..., EncodedImages] | None = None,
    ) -> EncodedImages:
        """The images' embeddings (rows in ``indices`` order, like ``encode_image_files``).

        ``encode``: what encodes images the store lacks, with ``encode_image_files``'s arguments (several
        processes: their shared version); None: ``encode_image_files`` (looked up at call time).
        """
        key = (model.image_fingerprint(), tuple(str(p) for p in paths))
        found = self._get(self._images, key)
        if found is not None:
            return found
        encoded = (encode or encode_image_files)(
            model, list(paths), cache=self.disk_cache, batch_size=batch_size, callback=callback,
            should_stop=should_stop,
        )
        if not encoded.cancelled:  # a partial result must not pass for the whole list next time
            self._put(self._images, key, encoded)
        return encoded

    def text_embeddings(self, model: ImageTextModel, texts: list[str]) -> np.ndarray:
        """L2-normalised (N, D) embeddings of a list of texts (e.g. every caption), kept like the images."""
        key = (model.fingerprint(), tuple(texts))
        found = self._get(self._texts, key)
        if found is not None:
            return found
        emb = l2_normalise(encode_texts(model, texts))
        self._put(self._texts, key, emb)
        return emb

    def _get(self, entries: OrderedDict, key: tuple):
        with self._lock:
            found = entries.get(key)
            if found is not None:
                entries.move_to_end(key)
            return found

    def _put(self, entries: OrderedDict, key: tuple, value) -> None:
        with self._lock:
            entries[key] = value
            while len(entries) > self._max_entries:
                entries.popitem(last=False)


def require_some_images(encoded: EncodedImages, dataset: Dataset) -> None:
    """DataError naming the first unreadable image when none of ``dataset`` could be encoded (and not cancelled)."""
    if encoded.indices or encoded.cancelled:
        return
    first = encoded.problems[0] if encoded.problems else None
    detail = f" (first: {first.path}: {first.reason})" if first else ""
    raise DataError(
        f"{dataset.source or dataset.root}: none of the {len(dataset)} images could be read{detail}."
    )
