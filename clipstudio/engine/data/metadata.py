"""Per-image metadata (sex, site, scanner, ...) from a CSV the user names, and the columns a dataset has.

Annotation files carry their metadata themselves: every column (key) other than the image, caption,
label and split becomes ``Sample.metadata`` as they are read (``pairs``). Class folders carry none,
so the user names a CSV: an image column (a name ``IMAGE_KEYS`` accepts) and any other columns::

    image,sex,site
    normal/img_001.png,F,site1
    pneumonia/img_002.png,M,site2

An image is named by its path below the dataset folder, or below the CSV's folder, or by its bare
file name when no other image has that name. Rows that name no image of the dataset, and images no
row names, are counted and told in one line (``MetadataRead.summary``); only a file that can't be
read as CSV, or has no image column, is a DataError.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.data.pairs import GROUP_KEYS, IMAGE_KEYS, sniff_delimiter
from clipstudio.engine.errors import DataError
from clipstudio.engine.plural import plural
from clipstudio.engine.storage.text_files import read_text

METADATA_FILE = "metadata file"  # how error messages name the file
PATIENT = "patient"  # the column name that means each image's patient (group), however the dataset names it

__all__ = ["METADATA_FILE", "PATIENT", "MetadataRead", "has_patient_alias", "metadata_columns", "read_metadata"]


@dataclass(frozen=True)
class MetadataRead:
    """The dataset with the file's columns attached, and how well the file's rows fit its images."""

    dataset: Dataset  # a copy: its samples carry the file's columns in ``metadata``
    source: Path
    columns: list[str]  # the file's columns other than the image one
    matched: int  # images that got a row
    unknown_rows: int  # rows naming no image of the dataset (or a bare name several images share)
    unknown_example: str  # "line 7: 'x.png'" ("" when none)
    without_row: int  # images no row names
    without_example: str  # the first such image, below the dataset folder ("" when none)
    repeated_rows: int = 0  # further rows for an image already named (their new columns still count)

    def summary(self) -> str:
        """One line: how many images got metadata, which columns, and what did not fit."""
        parts = [f"{self.source}: metadata for {self.matched} of {plural(len(self.dataset), 'image')} "
                 f"(columns: {', '.join(self.columns) or 'none besides the image'})"]
        if self.unknown_rows:
            parts.append(f"{plural(self.unknown_rows, 'row names', 'rows name')} no image of the dataset, skipped "
                         f"(e.g. {self.unknown_example})")
        if self.without_row:
            parts.append(f"{plural(self.without_row, 'image has', 'images have')} no row (e.g. '{self.without_example}')")
        if self.repeated_rows:
            parts.append(f"{plural(self.repeated_rows, 'row repeats', 'rows repeat')} an image already named (first values kept)")
        return "; ".join(parts) + "."


def read_metadata(path: str | os.PathLike, dataset: Dataset) -> MetadataRead:
    """Attach the columns of the CSV at ``path`` to the images of ``dataset`` they name.

    The file's values join the ones a sample already has (an annotation file's columns), the file
    winning where both name a column. An unreadable or malformed file, or one with no image column,
    is a DataError naming it and listing the columns found.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    header, rows = _read_rows(path)
    image_column = _image_column(header, path)
    columns = [h for h in header if h and h != image_column]
    finder = _ImageFinder(dataset, path.parent)
    attached: dict[int, dict[str, str]] = {}
    unknown, unknown_example, repeated = 0, "", 0
    for line, record in rows:
        name = (record.get(image_column) or "").strip()
        index = finder.find(name) if name else None
        if index is None:
            unknown += 1
            unknown_example = unknown_example or (f"line {line}: '{name}'" if name else f"line {line}: no image")
            continue
        values = {c: record[c].strip() for c in columns if (record.get(c) or "").strip()}
        if index in attached:
            repeated += 1
            for key, value in values.items():
                attached[index].setdefault(key, value)
        else:
            attached[index] = values
    samples = [
        replace(s, metadata={**s.metadata, **attached[i]}) if i in attached else s
        for i, s in enumerate(dataset.samples)
    ]
    missing = [i for i in range(len(samples)) if i not in attached]
    return MetadataRead(
        dataset=replace(dataset, samples=samples),
        source=path,
        columns=columns,
        matched=len(attached),
        unknown_rows=unknown,
        unknown_example=unknown_example,
        without_row=len(missing),
        without_example=finder.shown(missing[0]) if missing else "",
        repeated_rows=repeated,
    )


def metadata_columns(samples: list[Sample] | Dataset) -> list[str]:
    """The metadata columns the samples have, in the order first met; ``PATIENT`` too when they have
    patient groups that no column holds (groups set by a pattern on the file names)."""
    items = samples.samples if isinstance(samples, Dataset) else samples
    seen: dict[str, None] = {}
    for sample in items:
        seen.update(dict.fromkeys(sample.metadata))
    columns = list(seen)
    if has_patient_alias(items) and not any(c.lower() in GROUP_KEYS for c in columns):
        columns.append(PATIENT)
    return columns


def has_patient_alias(samples: list[Sample]) -> bool:
    """Whether ``PATIENT`` names each sample's patient group: some have one and no column is called so."""
    return any(s.group is not None for s in samples) and not any(PATIENT in s.metadata for s in samples)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    text = read_text(path, METADATA_FILE)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(first_line)
    # Strict: a quote never closed would swallow the rest of the file into one value, silently.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise DataError(f"{path}: the {METADATA_FILE} is empty; expected a header row naming the columns.")
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, {h: cell for h, cell in zip(header, row, strict=False) if h}))
    except csv.Error as exc:
        raise DataError(f"{path}: can't read the {METADATA_FILE} as CSV at line {reader.line_num} ({exc}).") from None
    return header, rows


def _image_column(header: list[str], path: Path) -> str:
    by_lower = {h.lower(): h for h in header if h}
    found = next((by_lower[n] for n in IMAGE_KEYS if n in by_lower), None)
    if found is None:
        listing = ", ".join(h if h.isprintable() else repr(h) for h in header if h) or "none"
        raise DataError(f"{path}: no image column in the {METADATA_FILE}; columns found: {listing}; "
                        f"accepted names: {', '.join(IMAGE_KEYS)}.")
    return found


class _ImageFinder:
    """Which sample a row's image names: its path below the dataset folder or the CSV's folder (or an
    absolute path), else its bare file name when only one image has it."""

    def __init__(self, dataset: Dataset, csv_folder: Path):
        root = str(dataset.root)
        self._roots = list(dict.fromkeys([root, os.path.realpath(root)]))
        self._folders = list(dict.fromkeys([str(csv_folder), os.path.realpath(csv_folder)]))
        self._by_relative: dict[str, int] = {}
        by_name: dict[str, list[int]] = {}
        self._relative: list[str] = []
        for i, sample in enumerate(dataset.samples):
            relative = self._below_root(str(sample.path)) or Path(sample.path).as_posix()
            self._relative.append(relative)
            self._by_relative.setdefault(os.path.normcase(relative), i)
            by_name.setdefault(os.path.normcase(Path(sample.path).name), []).append(i)
        self._by_name = {name: found[0] for name, found in by_name.items() if len(found) == 1}

    def find(self, name: str) -> int | None:
        text = name.replace("\\", "/") if os.sep == "/" else name
        candidates = [text] if os.path.isabs(text) else [*(os.path.join(f, text) for f in self._folders), text]
        for candidate in candidates:
            relative = self._below_root(os.path.normpath(candidate)) if os.path.isabs(candidate) else None
            if relative is None and not os.path.isabs(candidate):
                relative = Path(os.path.normpath(candidate)).as_posix()
            if relative is not None and os.path.normcase(relative) in self._by_relative:
                return self._by_relative[os.path.normcase(relative)]
        if "/" not in text and (os.sep == "/" or "\\" not in text):
            return self._by_name.get(os.path.normcase(text))
        return None

    def shown(self, index: int) -> str:
        return self._relative[index]

    def _below_root(self, absolute: str) -> str | None:
        for root in self._roots:
            prefix = os.path.join(root, "")
            if os.path.normcase(absolute).startswith(os.path.normcase(prefix)):
                return Path(absolute[len(prefix):]).as_posix()
        return None
