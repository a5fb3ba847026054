"""A user's corrections to a dataset (leave an image out, give it another class), kept outside it.

The dataset folder is never written to. The corrections of a dataset are one readable CSV file
(``path,action,label``) under ``user_data_dir()/corrections``, named after the dataset's resolved
path the way the saved prompts are, and written atomically. ``load_dataset`` applies the file every
time the dataset is read, so the app, the CLI and training all see the same corrected dataset. A
file that can't be used is reported in one sentence naming it, and the dataset loads uncorrected.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ClipStudioError, DataError
from clipstudio.engine.storage.atomic import atomic_write_text
from clipstudio.engine.storage.paths import dataset_file
from clipstudio.engine.storage.text_files import read_text

EXCLUDE = "exclude"
RELABEL = "relabel"
ACTIONS = (EXCLUDE, RELABEL)
COLUMNS = ("path", "action", "label")


class CorrectionsError(DataError):
    """The corrections file of a dataset can't be read or parsed."""


@dataclass(frozen=True)
class Correction:
    """Leave the image at ``path`` out (``exclude``), or give it class ``label`` (``relabel``)."""

    path: str  # the image's absolute path, as the dataset reader gives it
    action: str  # EXCLUDE | RELABEL
    label: str = ""  # the new class name (relabel only)

    def describe(self) -> str:
        return "left out" if self.action == EXCLUDE else f"relabelled as {self.label}"



def corrections_file(dataset_path: str | os.PathLike) -> Path:
    """The CSV holding a dataset's corrections, e.g. ``corrections/bloodmnist-folders-3f2a9c1e.csv``."""
    return dataset_file("corrections", dataset_path, ".csv")


def read_corrections(dataset_path: str | os.PathLike) -> list[Correction]:
    """The dataset's corrections, in the order they were made ([] when there are none).

    Raises ``CorrectionsError`` naming the file and the first thing wrong with it.
    """
    path = corrections_file(dataset_path)
    if not path.exists():
        return []
    text = read_text(path, "corrections file", error=CorrectionsError)
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or [h.strip().lower() for h in header] != list(COLUMNS):
        raise CorrectionsError(
            f"{path}: not a corrections file (the first line must be '{','.join(COLUMNS)}'); "
            "the dataset was read without corrections."
        )
    found: dict[str, Correction] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        correction = _parse_row(path, line, row)
        found.pop(correction.path, None)  # a later row for the same image replaces the earlier one
        found[correction.path] = correction
    return list(found.values())


def _parse_row(path: Path, line: int, row: list[str]) -> Correction:
    where = f"{path}, line {line}"
    if len(row) != len(COLUMNS):
        raise CorrectionsError(
            f"{where}: expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), found {len(row)}; "
            "the dataset was read without corrections."
        )
    image, action, label = (cell.strip() for cell in row)
    action = action.lower()
    if not image:
        raise CorrectionsError(f"{where}: the image path is empty; the dataset was read without corrections.")
    if action not in ACTIONS:
        raise CorrectionsError(
            f"{where}: unknown action '{action}' (expected {' or '.join(ACTIONS)}); "
            "the dataset was read without corrections."
        )
    if action == RELABEL and not label:
        raise CorrectionsError(f"{where}: a relabel needs the new class; the dataset was read without corrections.")
    return Correction(image, action, label if action == RELABEL else "")


def write_corrections(dataset_path: str | os.PathLike, corrections: Iterable[Correction]) -> Path:
    """Replace the dataset's corrections (atomically); no corrections removes the file. Returns the file."""
    path = corrections_file(dataset_path)
    rows = list(corrections)
    if not rows:
        path.unlink(missing_ok=True)
        return path
    return atomic_write_text(path, corrections_text(rows))


def corrections_text(corrections: Iterable[Correction]) -> str:
    """The corrections as the CSV text of a corrections file (header ``path,action,label``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows((c.path, c.action, c.label) for c in corrections)
    return out.getvalue()


def add_corrections(dataset_path: str | os.PathLike, new: Iterable[Correction]) -> list[Correction]:
    """Record ``new`` (each replacing any earlier correction of the same image); returns them all."""
    by_path = {c.path: c for c in read_corrections(dataset_path)}
    for correction in new:
        if correction.action not in ACTIONS:
            raise ValueError(f"unknown correction action {correction.action!r}")
        by_path.pop(correction.path, None)
        by_path[correction.path] = correction
    corrections = list(by_path.values())
    write_corrections(dataset_path, corrections)
    return corrections


def remove_corrections(dataset_path: str | os.PathLike, paths: Iterable[str] | None = None) -> list[Correction]:
    """Undo the corrections of the images ``paths`` (all of them when None); returns those left."""
    if paths is None:
        write_corrections(dataset_path, [])
        return []
    drop = {str(p) for p in paths}
    kept = [c for c in read_corrections(dataset_path) if c.path not in drop]
    write_corrections(dataset_path, kept)
    return kept


def apply_corrections(dataset: Dataset, corrections: Iterable[Correction]) -> tuple[Dataset, list[Correction]]:
    """The dataset with the corrections applied, and the corrections that applied.

    A correction of an image the dataset doesn't hold, or a relabel to a class it doesn't have (or
    of a dataset without classes), changes nothing.
    """
    by_path = {c.path: c for c in corrections}
    if not by_path:
        return dataset, []
    class_index = {name: i for i, name in enumerate(dataset.class_names)}
    samples = []
    applied: list[Correction] = []
    for sample in dataset.samples:
        correction = by_path.get(str(sample.path))
        if correction is None:
            samples.append(sample)
        elif correction.action == EXCLUDE:
            applied.append(correction)
        elif correction.label in class_index and sample.label is not None:
            samples.append(replace(sample, label=class_index[correction.label]))
            applied.append(correction)
        else:
            samples.append(sample)
    return replace(dataset, samples=samples), applied


def apply_saved_corrections(dataset: Dataset, dataset_path: str | os.PathLike) -> Dataset:
    """The dataset with its corrections file applied (``load_dataset`` calls this).

    Sets ``dataset.corrections_applied``; when the file can't be used, ``dataset.corrections_warning``
    says why and the dataset is returned uncorrected.
    """
    try:
        corrections = read_corrections(dataset_path)
    except ClipStudioError as exc:
        return replace(dataset, corrections_applied=0, corrections_warning=str(exc))
    corrected, applied = apply_corrections(dataset, corrections)
    return replace(corrected, corrections_applied=len(applied), corrections_warning=None, corrections=applied)


def export_cleaned_list(dataset: Dataset, out: str | os.PathLike) -> Path:
    """Write the (corrected) dataset as a CSV of ``path,label`` (plus split, group and caption where
    the dataset has them) that CLIP Studio and other tools open as a dataset. Written atomically."""
    names = dataset.class_names
    has_split = any(s.split for s in dataset.samples)
    has_group = any(s.group for s in dataset.samples)
    has_caption = dataset.has_captions
    header = ["path", "label"] + ["split"] * has_split + ["group"] * has_group + ["caption"] * has_caption
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for s in dataset.samples:
        row = [str(s.path), names[s.label] if s.label is not None and s.label < len(names) else ""]
        if has_split:
            row.append(s.split or "")
        if has_group:
            row.append(s.group or "")
        if has_caption:
            row.append(s.captions[0] if s.captions else "")
        writer.writerow(row)
    return atomic_write_text(out, buffer.getvalue())
