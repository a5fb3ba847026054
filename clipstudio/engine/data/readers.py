"""Dataset readers: work out what the user pointed at (folder or annotation file) and read it.

Class folders live in ``folders.py``; annotation files (CLIP-Finetune pairs, JSON, JSONL, CSV/TSV)
in ``pairs.py``. Nothing here opens an image or writes into the dataset folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.corrections import apply_saved_corrections
from clipstudio.engine.data.dataset import SPLIT_NAMES, Dataset
from clipstudio.engine.data.folders import (
    is_image_name,
    iter_images,
    read_class_folders,
    split_of_folder,
    visible_subfolders,
)
from clipstudio.engine.data.pairs import ANNOTATION_FILE, json_type_name, read_annotation_files
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.storage.text_files import read_json

FORMATS = ("class_folders", "clip_finetune", "json_list", "json_dict", "jsonl", "csv")

PAIRS_FILE = "img_text_pair.json"  # CLIP-Finetune: <split>/img_text_pair.json beside <split>/imgs/
# Hugging Face imagefolder metadata, looked for inside the folder the user picked.
METADATA_FILES = (("metadata.jsonl", "jsonl"), ("metadata.csv", "csv"))
_FILE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}
_ANNOTATION_SUFFIXES = (".json", *_FILE_FORMATS)
# Sub-folders that hold an annotation file's images (ARCH's images/, open_clip's and CLIP-Finetune's imgs/).
_IMAGE_FOLDERS = ("images", "imgs")

# (split or None, annotation file) pairs a dataset is read from.
_Files = list[tuple[str | None, Path]]


def detect_format(path: str | Path) -> str:
    """The format (one of FORMATS) of the dataset at ``path``; DataError when none fits."""
    return _detect(existing_path(path))[0]


def load_dataset(
    path: str | Path,
    *,
    image_key: str | None = None,
    caption_key: str | None = None,
    images_dir: str | Path | None = None,
    allow_outside_root: bool = False,
) -> Dataset:
    """Read the dataset at ``path`` (folder or annotation file), detecting its format.

    image_key, caption_key: the JSON key / CSV column holding the image path and the caption,
        when not one of the usual names.
    images_dir: the folder image paths in an annotation file are relative to (default: the
        file's folder, or its ``imgs``/``images`` sibling).
    allow_outside_root: accept image paths that lead outside the dataset folder.
    Entries that can't be used are skipped and listed in ``Dataset.problems``. The user's
    corrections kept for this dataset (``data.corrections``) are applied.
    """
    source = existing_path(path)
    dataset = _read(source, image_key, caption_key, images_dir, allow_outside_root)
    return apply_saved_corrections(dataset, source)


def _read(
    source: Path,
    image_key: str | None,
    caption_key: str | None,
    images_dir: str | Path | None,
    allow_outside_root: bool,
) -> Dataset:
    fmt, files = _detect(source)
    if fmt == "class_folders":
        return read_class_folders(source, source=source)
    images = _images_folder(images_dir) if images_dir is not None else None
    if images is not None and len(files) > 1:
        raise DataError(
            f"{source} holds several splits; an images folder can only be given for one annotation "
            "file, so point at that file instead."
        )
    return read_annotation_files(
        fmt,
        files,
        root=source if source.is_dir() else source.parent,
        source=source,
        image_key=image_key,
        caption_key=caption_key,
        images_dir=images,
        allow_outside_root=allow_outside_root,
    )


def load_dataset_from_config(data: DataConfig) -> Dataset:
    """The dataset ``data.path`` names, read with the keys, images folder and path rule of ``data``.

    The split and group settings are not applied here: they decide how the dataset is used.
    """
    if not data.path:
        raise ConfigError("data.path is empty: choose the dataset.")
    return load_dataset(
        data.path,
        image_key=data.image_key,
        caption_key=data.caption_key,
        images_dir=data.images_dir,
        allow_outside_root=data.allow_outside_root,
    )


def existing_path(path: str | Path) -> Path:
    """The user's path made absolute (not resolved: it's shown back to them); must exist."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    try:
        exists = p.exists()
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise DataError(f"{p} does not exist.")
    return p


def _images_folder(images_dir: str | Path) -> Path:
    p = Path(os.path.abspath(Path(images_dir).expanduser()))
    if not p.is_dir():
        raise DataError(f"{p}: images folder not found.")
    return p


def _detect(path: Path) -> tuple[str, _Files]:
    if path.is_dir():
        return _detect_folder(path)
    if not path.is_file():
        raise DataError(f"{path} is neither a folder nor a file.")
    return _detect_file(path), [(None, path)]


def _detect_file(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        if _json_kind(path) == "list":
            return "clip_finetune" if path.name.lower() == PAIRS_FILE else "json_list"
        return "json_dict"
    if suffix in _FILE_FORMATS:
        return _FILE_FORMATS[suffix]
    if is_image_name(path.name):
        raise DataError(f"{path} is an image; choose the folder (or annotation file) of the dataset.")
    raise DataError(
        f"{path}: unsupported file type '{path.suffix}'; choose a folder or a .json, .jsonl, .csv or .tsv file."
    )


def _json_kind(path: Path) -> str:
    """Whether the JSON holds a list or a dict, from its first character; a full parse only to explain a bad file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8-sig", errors="ignore").lstrip()
    except OSError as exc:
        raise DataError(f"{path}: can't read the file ({exc.strerror or exc}).") from None
    if head[:1] == "[":
        return "list"
    if head[:1] == "{":
        return "dict"
    data = read_json(path, ANNOTATION_FILE)  # raises for malformed or non-UTF-8 JSON, naming the line
    if isinstance(data, list):
        return "list"
    if isinstance(data, dict):
        return "dict"
    raise DataError(
        f"{path}: expected a JSON list of entries or an object mapping image ids to captions, "
        f"found {json_type_name(data)}."
    )


def _detect_folder(folder: Path) -> tuple[str, _Files]:
    """Metadata file, then CLIP-Finetune pairs (here or per split), then an annotation file at the
    root beside its images folder, then class folders."""
    for name, fmt in METADATA_FILES:
        if (folder / name).is_file():
            return fmt, [(None, folder / name)]
    if (folder / PAIRS_FILE).is_file():
        return "clip_finetune", [(None, folder / PAIRS_FILE)]

    subfolders = visible_subfolders(folder)
    order = {name: i for i, name in enumerate(SPLIT_NAMES)}
    splits = sorted(
        ((split_of_folder(d.name), d) for d in subfolders if split_of_folder(d.name)),
        key=lambda sd: (order[sd[0]], sd[1].name),
    )
    for name, fmt in ((PAIRS_FILE, "clip_finetune"), *METADATA_FILES):
        per_split: _Files = [(split, d / name) for split, d in splits if (d / name).is_file()]
        if per_split:
            return fmt, per_split

    nested = [d.name for d in subfolders if _looks_like_dataset(d)]
    if nested:
        raise DataError(f"{folder} seems to hold several datasets ({', '.join(nested)}); choose one of them.")
    annotations = _root_annotation_files(folder)
    if annotations:
        with_images = [d for d in subfolders if next(iter_images(d), None) is not None]
        # One class folder can't be a classification dataset, and images/ or imgs/ is where an annotation
        # file's images live: beside either, an annotation file at the root is what the folder means.
        if len(with_images) < 2 or any(_is_image_folder(d) for d in with_images):
            return _detect_root_annotations(folder, annotations)
        return "class_folders", []
    if any(next(iter_images(d), None) is not None for d in subfolders):
        return "class_folders", []
    if any(is_image_name(p.name) and p.is_file() for p in _children(folder)):
        raise DataError(
            f"{folder} holds images but no class folders or annotation file: put each class in its own "
            "sub-folder (<folder>/<class>/<image>), or add a metadata.jsonl or metadata.csv with captions."
        )
    raise DataError(
        f"{folder}: no images found (looked for class folders, {PAIRS_FILE}, metadata.jsonl and metadata.csv)."
    )


def _root_annotation_files(folder: Path) -> list[Path]:
    """The JSON, JSONL, CSV and TSV files directly in ``folder``, by name."""
    return sorted(
        (p for p in _children(folder) if p.suffix.lower() in _ANNOTATION_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )


def _is_image_folder(folder: Path) -> bool:
    return folder.name.lower() in _IMAGE_FOLDERS


def _detect_root_annotations(folder: Path, annotations: list[Path]) -> tuple[str, _Files]:
    """The one annotation file at a folder's root, or one per split (``train.csv`` + ``val.csv``)."""
    if len(annotations) == 1:
        return _detect_file(annotations[0]), [(None, annotations[0])]
    splits = [split_of_folder(p.stem) for p in annotations]
    formats = {_detect_file(p) for p in annotations} if all(splits) else set()
    if len(formats) == 1 and len(set(splits)) == len(splits):
        order = {name: i for i, name in enumerate(SPLIT_NAMES)}
        files = sorted(zip(splits, annotations, strict=True), key=lambda sp: order[sp[0]])
        return formats.pop(), files
    names = ", ".join(p.name for p in annotations)
    raise DataError(
        f"{folder} holds several annotation files ({names}) beside its images; choose one of them."
    )


def _looks_like_dataset(folder: Path) -> bool:
    """An annotation file in it or its split folders, an annotation file beside an images folder, or
    split folders of class folders.

    Catches a parent of datasets (e.g. ``pneumoniamnist/`` holding ``folders/`` and ``pairs/``, or
    ARCH's ``books_set/`` and ``pubmed_set/``), which would otherwise read as class folders named
    after the datasets.
    """
    names = [PAIRS_FILE] + [name for name, _ in METADATA_FILES]
    subfolders = visible_subfolders(folder)
    splits = [d for d in subfolders if split_of_folder(d.name)]
    if any((d / n).is_file() for d in [folder, *splits] for n in names):
        return True
    if any(_is_image_folder(d) for d in subfolders) and _root_annotation_files(folder):
        return True
    return bool(splits) and len(splits) == len(subfolders) and any(visible_subfolders(d) for d in splits)


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return []
