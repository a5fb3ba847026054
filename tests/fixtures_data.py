"""Dataset fixtures shared across test folders: small generated image trees."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from PIL import Image

# Distinct colours per class, so a tiny model can tell generated classes apart.
_PALETTE = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200)]

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def write_png(path: Path, color: tuple[int, int, int] = (128, 128, 128), size: int = 8) -> Path:
    """An 8x8 RGB PNG at ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path, format="PNG")
    return path


@pytest.fixture
def tiny_png() -> Callable[..., Path]:
    """``tiny_png(path, color=(r, g, b))`` writes a tiny PNG and returns its path."""
    return write_png


@pytest.fixture
def make_class_folders() -> Callable[..., Path]:
    """``make_class_folders(root, {"normal": 3, "pneumonia": 2})`` -> root/<class>/<class>_<i>.png.

    Nest a level for split folders: ``{"train": {"normal": 3, ...}, "test": {...}}``.
    Each class gets its own colour (shade varies by index).
    """

    def make(root: Path, counts: Mapping[str, int | Mapping[str, int]]) -> Path:
        nested = all(isinstance(v, Mapping) for v in counts.values())
        layout = counts if nested else {None: counts}
        classes = sorted({c for per_class in layout.values() for c in per_class})
        for split, per_class in layout.items():
            base = root / split if split else root
            for name, n in per_class.items():
                r, g, b = _PALETTE[classes.index(name) % len(_PALETTE)]
                (base / name).mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    shade = 10 * (i % 5)
                    write_png(base / name / f"{name}_{i}.png", (r - shade, g - shade, b - shade))
        return root

    return make


@pytest.fixture
def make_clip_finetune() -> Callable[..., Path]:
    """``make_clip_finetune(root, {"train": 3, "val": 2})`` -> CLIP-Finetune layout.

    Writes root/<split>/imgs/<split>_<i>.png and root/<split>/img_text_pair.json with captions
    ``"<split> image <i>"``.
    """

    def make(root: Path, counts: Mapping[str, int]) -> Path:
        for split, n in counts.items():
            entries = []
            for i in range(n):
                name = f"{split}_{i}.png"
                write_png(root / split / "imgs" / name, _PALETTE[i % len(_PALETTE)])
                entries.append({"img": name, "caption": f"{split} image {i}"})
            (root / split / "img_text_pair.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
        return root

    return make


@pytest.fixture
def shared_datasets() -> Path:
    """The real offline datasets folder (../shared/datasets); skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
