"""A deterministic stand-in ImageTextModel whose zero-shot answers a test can predict.

An image embeds as its mean colour (dimensions 0-2, plus a small constant in 3-5); a text embeds
as the sum of the colours it names ("red", "yellow", ...) plus a small hash-derived vector per
other word (dimensions 3-5). So a solid red PNG is nearest to any text mentioning "red".
The model counts its calls so tests can tell cached work from re-encoding.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipstudio.engine.models.base import ImageTextModel

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
DIM = 6


def write_png(path: Path, rgb: tuple[int, int, int], size: int = 8) -> Path:
    """A solid-colour PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), rgb).save(path)
    return path


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def text_vector(text: str) -> np.ndarray:
    """The fake text embedding (normalised), computed without touching the call counters."""
    v = np.zeros(DIM)
    for word in re.findall(r"\w+", text.lower()):
        if word in COLOURS:
            v[:3] += np.array(COLOURS[word]) / 255.0
        else:
            digest = hashlib.sha256(word.encode("utf-8")).digest()
            v[3:] += 0.05 * (np.frombuffer(digest[:3], dtype=np.uint8) / 127.5 - 1.0)
    return _unit(v)


class FakeModel(ImageTextModel):
    kind = "fake"

    def __init__(self, fingerprint: str = "fake0001"):
        self._fingerprint = fingerprint
        self.image_calls = 0
        self.images_encoded = 0
        self.text_calls = 0
        self.texts_encoded: list[str] = []

    @property
    def embed_dim(self) -> int:
        return DIM

    @property
    def logit_scale(self) -> float:
        return 100.0

    @property
    def max_text_tokens(self) -> int:
        return 77

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device) -> FakeModel:
        return self

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        arr = np.stack(
            [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255.0 for im in images]
        )
        return torch.from_numpy(arr).permute(0, 3, 1, 2)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.image_calls += 1
        self.images_encoded += len(pixel_values)
        mean = pixel_values.mean(dim=(2, 3))
        emb = torch.cat([mean, torch.full_like(mean, 0.01)], dim=1)
        return torch.nn.functional.normalize(emb, dim=1)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        self.text_calls += 1
        self.texts_encoded.extend(texts)
        return torch.tensor(np.stack([text_vector(t) for t in texts]), dtype=torch.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def fingerprint(self) -> str:
        return self._fingerprint

    def save(self, folder) -> Path:
        raise NotImplementedError("the fake model is never saved")
