"""The one dataset model every reader produces and every consumer takes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from clipstudio.engine.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Sample:
    """One image, with its optional class label, captions, patient/group id, split and metadata."""

    path: Path  # absolute path of the image file
    label: int | None = None  # index into Dataset.class_names
    captions: list[str] = field(default_factory=list)
    group: str | None = None  # e.g. patient id; keeps a group inside one split
    split: str | None = None  # "train" | "val" | "test" | None (unassigned)
    # Other columns of its row (sex, site, scanner, ...), as text; what subgroups are made by.
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """An item that was skipped, and why. ``path`` is the file (or file:line / file[key])."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Dataset:
    """Samples plus class names, the detected format and the problems found while reading."""

    root: Path  # folder image paths are resolved against
    format: str  # see clipstudio.engine.data.readers.FORMATS
    samples: list[Sample]
    class_names: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    source: Path | None = None  # what the user pointed at (folder or annotation file)
    # The user's corrections (engine/data/corrections.py) applied when read, and why none were
    # when the corrections file can't be used.
    corrections_applied: int = 0
    corrections_warning: str | None = None
    corrections: list = field(default_factory=list)  # the corrections.Correction rows applied (run folders copy them)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def is_classification(self) -> bool:
        return len(self.class_names) >= 2 and all(s.label is not None for s in self.samples)

    @property
    def has_captions(self) -> bool:
        return any(s.captions for s in self.samples)

    @property
    def labels(self) -> list[int | None]:
        return [s.label for s in self.samples]

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    def split_names(self) -> list[str]:
        """Split names present, in train/val/test order (empty when unassigned)."""
        present = {s.split for s in self.samples if s.split}
        ordered = [n for n in SPLIT_NAMES if n in present]
        return ordered + sorted(present - set(ordered))

    def subset(self, indices: list[int]) -> Dataset:
        """A dataset of the given samples; class names and problems are kept."""
        return replace(self, samples=[self.samples[i] for i in indices])

    def split(self, name: str) -> Dataset:
        """The samples of one split. An unknown split raises DataError naming the ones present."""
        idx = [i for i, s in enumerate(self.samples) if s.split == name]
        if not idx:
            have = ", ".join(self.split_names()) or "none (use the whole dataset)"
            raise DataError(f"{self.source or self.root}: no '{name}' split; splits present: {have}.")
        return self.subset(idx)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples if s.label is not None)
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}

    def all_captions(self) -> list[str]:
        return [c for s in self.samples for c in s.captions]
