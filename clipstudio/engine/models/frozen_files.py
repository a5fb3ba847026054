"""Files of a model part that never changes while training, serialised once and re-written as bytes.

A checkpoint re-saves the whole model folder. The tokenizer and the image processor are the same
at every checkpoint, yet ``save_pretrained`` re-serialises them each time, holding the GIL for
50-70 ms (the fast tokenizer's JSON is built in Rust), which a desktop app feels as a frozen
window. ``FrozenFiles`` runs the save once into a temporary folder, keeps the bytes, and writes
them atomically from then on (plain file writes, which release the GIL).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from clipstudio.engine.storage.atomic import atomic_write_bytes


class FrozenFiles:
    """``write(folder)`` produces what ``save(folder)`` would, calling ``save`` again only when ``key()`` changes.

    ``key`` returns something comparable that changes whenever the saved part would (e.g. the image
    processor's settings); by default the part is assumed never to change.
    """

    def __init__(self, save: Callable[[str], object], key: Callable[[], object] = lambda: None) -> None:
        self._save = save
        self._key = key
        self._saved_key: object = None
        self._files: dict[str, bytes] | None = None

    def write(self, folder: str | os.PathLike) -> None:
        key = self._key()
        if self._files is None or key != self._saved_key:
            self._saved_key = key
            with tempfile.TemporaryDirectory(prefix="clipstudio-save-") as tmp:
                self._save(tmp)
                root = Path(tmp)
                self._files = {
                    path.relative_to(root).as_posix(): path.read_bytes()
                    for path in sorted(root.rglob("*"))
                    if path.is_file()
                }
        folder = Path(folder)
        for name, data in self._files.items():
            atomic_write_bytes(folder / name, data)
