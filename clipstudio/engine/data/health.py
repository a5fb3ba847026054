"""The dataset health report: counts, class balance, unreadable files, duplicates and leakage, sizes, captions.

Only file headers are read (plus the bytes for a content hash), so 10k images take seconds.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from clipstudio.engine.data.dataset import SPLIT_NAMES, Dataset, Problem
from clipstudio.engine.data.images import image_size
from clipstudio.engine.errors import ImageError
from clipstudio.engine.events import Callback, ProgressUpdated, ShouldStop, never_stop, no_callback
from clipstudio.engine.plural import plural

IMBALANCE_WARNING_RATIO = 3.0  # largest/smallest class count from which the report warns
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress events a second
IO_WORKERS = 4  # hashing and header reads wait on the disk, not the CPU
IN_FLIGHT = 4 * IO_WORKERS
_CHUNK = 1 << 20
_UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class DuplicateGroup:
    """Samples whose files have identical bytes; ``leakage`` when they sit in more than one split."""

    sha256: str
    paths: list[str]
    splits: list[str]

    @property
    def leakage(self) -> bool:
        return len(self.splits) > 1

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "paths": self.paths, "splits": self.splits, "leakage": self.leakage}


@dataclass
class HealthReport:
    """What :func:`health_report` found; ``to_dict()`` is what ``clipstudio inspect --json`` prints."""

    format: str
    n_images: int
    n_unreadable: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int] | int] = field(default_factory=dict)
    imbalance_ratio: float | None = None
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    image_sizes: dict = field(default_factory=dict)
    captions: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    complete: bool = True  # False when stopped early: file checks cover only part of the dataset

    @property
    def n_leakage(self) -> int:
        """Distinct images (contents) found in more than one split."""
        return sum(group.leakage for group in self.duplicates)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "n_images": self.n_images,
            "n_unreadable": self.n_unreadable,
            "classes": dict(self.classes),
            "splits": {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.splits.items()},
            "imbalance_ratio": self.imbalance_ratio,
            "duplicates": [group.to_dict() for group in self.duplicates],
            "n_leakage": self.n_leakage,
            "problems": [problem.to_dict() for problem in self.problems],
            "image_sizes": self.image_sizes,
            "captions": self.captions,
            "warnings": list(self.warnings),
            "complete": self.complete,
        }


@dataclass(frozen=True)
class _FileCheck:
    sha256: str | None = None
    size: tuple[int, int] | None = None
    reason: str | None = None  # why the file can't be used; None when it can


def health_report(
    dataset: Dataset,
    *,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_tokens: int | None = None,
    check_images: bool = True,
    callback: Callback = no_callback,
    should_stop: ShouldStop = never_stop,
) -> HealthReport:
    """Check a dataset before training: what a user should fix or know about.

    count_tokens: the text model's tokenizer as ``captions -> token counts``; enables token stats.
    max_tokens: the text encoder's context length; captions over it are counted.
    check_images: read each image header (size, truncation); the content hash is always computed.
    Stopping early (``should_stop``) returns a partial report with ``complete`` False.
    """
    report = HealthReport(format=dataset.format, n_images=len(dataset.samples))
    report.classes = dataset.class_counts() if dataset.class_names else {}
    report.splits = _split_counts(dataset)
    report.imbalance_ratio = _imbalance_ratio(report.classes)
    report.captions = _caption_stats(dataset, count_tokens, max_tokens)
    report.problems = list(dataset.problems)

    checks = _check_files(dataset, check_images, callback, should_stop)
    report.complete = len(checks) == len({s.path for s in dataset.samples})
    for path, check in checks.items():
        if check.reason is not None:
            report.problems.append(Problem(path=str(path), reason=check.reason))
    report.n_unreadable = sum(check.reason is not None for check in checks.values())
    report.duplicates = _duplicates(dataset, checks)
    report.image_sizes = _size_stats([check.size for check in checks.values() if check.size is not None])
    report.warnings = _warnings(dataset, report, n_checked=len(checks))
    return report


# --- per-file checks ---------------------------------------------------------------------------


def _check_files(
    dataset: Dataset, check_images: bool, callback: Callback, should_stop: ShouldStop
) -> dict[Path, _FileCheck]:
    """Hash (and header-check) every distinct file on a few threads; stops early on request."""
    paths = list(dict.fromkeys(s.path for s in dataset.samples))
    total = len(paths)
    checks: dict[Path, _FileCheck] = {}
    stage = "check images"
    callback(ProgressUpdated(stage=stage, done=0, total=total))
    queue = iter(paths)
    pending: dict[Future, Path] = {}
    last_emit = time.monotonic()
    with ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="health") as pool:
        # A short queue, refilled as files finish: waiting stays cheap and a stop takes effect
        # after the few files in flight, not after the whole dataset.
        while True:
            while len(pending) < IN_FLIGHT and (path := next(queue, None)) is not None:
                pending[pool.submit(_check_file, path, check_images)] = path
            if not pending or should_stop():
                break
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in done:
                checks[pending.pop(future)] = future.result()
            now = time.monotonic()
            if done and (now - last_emit >= PROGRESS_INTERVAL_S or len(checks) == total):
                callback(ProgressUpdated(stage=stage, done=len(checks), total=total))
                last_emit = now
        for future in pending:
            future.cancel()
    # Keep the dataset's order, whatever order the threads finished in.
    return {p: checks[p] for p in paths if p in checks}


def _check_file(path: Path, check_images: bool) -> _FileCheck:
    size = None
    if check_images:
        try:
            size = image_size(path)
        except ImageError as e:
            return _FileCheck(reason=_strip_path(str(e), path))
    try:
        digest = _sha256(path)
    except OSError as e:
        return _FileCheck(reason=_os_error_reason(e))
    return _FileCheck(sha256=digest, size=size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _os_error_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, IsADirectoryError):
        return "is a folder, not an image file"
    return f"cannot read the file ({e.strerror or e})"


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


# --- summaries ---------------------------------------------------------------------------------


def _split_counts(dataset: Dataset) -> dict[str, dict[str, int] | int]:
    """split -> {class -> count} (or split -> count when unlabelled); {} when no splits are set."""
    names = dataset.split_names()
    if not names:
        return {}
    if any(s.split is None for s in dataset.samples):
        names.append(_UNASSIGNED)
    labelled = bool(dataset.class_names) and any(s.label is not None for s in dataset.samples)
    out: dict[str, dict[str, int] | int] = {}
    for name in names:
        members = [s for s in dataset.samples if (s.split or _UNASSIGNED) == name]
        if labelled:
            counts = Counter(s.label for s in members)
            out[name] = {cls: counts.get(i, 0) for i, cls in enumerate(dataset.class_names)}
        else:
            out[name] = len(members)
    return out


def _imbalance_ratio(classes: dict[str, int]) -> float | None:
    counts = [n for n in classes.values() if n > 0]
    if len(counts) < 2:
        return None
    return round(max(counts) / min(counts), 2)


def _stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _size_stats(sizes: list[tuple[int, int]]) -> dict:
    """min/median/max width and height of the readable images; {} when none were measured."""
    if not sizes:
        return {}
    return {
        "n": len(sizes),
        "width": _stats([w for w, _ in sizes]),
        "height": _stats([h for _, h in sizes]),
        "n_distinct": len(set(sizes)),
    }


def _caption_stats(
    dataset: Dataset, count_tokens: Callable[[list[str]], list[int]] | None, max_tokens: int | None
) -> dict:
    captions = dataset.all_captions()
    stats: dict = {"n": len(captions)}
    if not captions:
        return stats
    stats["n_images_without"] = sum(not s.captions for s in dataset.samples)
    stats["chars"] = _stats([len(c) for c in captions])
    if count_tokens is not None:
        tokens = list(count_tokens(captions))
        stats["tokens"] = _stats(tokens)
        if max_tokens is not None:
            stats["max_tokens"] = max_tokens
            stats["n_over_token_limit"] = sum(n > max_tokens for n in tokens)
    return stats


def _duplicates(dataset: Dataset, checks: dict[Path, _FileCheck]) -> list[DuplicateGroup]:
    """Groups of samples with byte-identical files, leaking ones first; unreadable files are left out."""
    by_hash: dict[str, list] = defaultdict(list)
    for sample in dataset.samples:
        check = checks.get(sample.path)
        if check is not None and check.sha256 is not None and check.reason is None:
            by_hash[check.sha256].append(sample)
    groups = []
    for digest, members in by_hash.items():
        if len(members) < 2:
            continue
        present = {s.split for s in members if s.split}
        splits = [n for n in SPLIT_NAMES if n in present] + sorted(present - set(SPLIT_NAMES))
        groups.append(DuplicateGroup(sha256=digest, paths=[str(s.path) for s in members], splits=splits))
    groups.sort(key=lambda g: (not g.leakage, g.paths[0]))
    return groups


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _warnings(dataset: Dataset, report: HealthReport, *, n_checked: int) -> list[str]:
    out = []
    if not report.complete:
        out.append(
            f"Check stopped early: {n_checked} of {len({s.path for s in dataset.samples})} files checked"
        )
    if report.n_unreadable:
        out.append(f"{plural(report.n_unreadable, 'file', 'files')} could not be read")
    n_skipped = len(dataset.problems)
    if n_skipped:
        out.append(f"{plural(n_skipped, 'item was', 'items were')} skipped while reading the dataset")

    ratio = report.imbalance_ratio
    if ratio is not None and ratio >= IMBALANCE_WARNING_RATIO:
        present = {k: v for k, v in report.classes.items() if v > 0}
        big = max(present, key=present.get)
        small = min(present, key=present.get)
        out.append(f"Class imbalance {ratio:.1f}:1 ({big} {present[big]}, {small} {present[small]})")
    empty = [name for name, n in report.classes.items() if n == 0]
    if empty:
        out.append(f"No images for {plural(len(empty), 'class', 'classes')}: {', '.join(empty)}")
    for split, counts in report.splits.items():
        if split == _UNASSIGNED or not isinstance(counts, dict):
            continue
        missing = [cls for cls, n in counts.items() if n == 0 and report.classes.get(cls, 0) > 0]
        if missing:
            out.append(f"The {split} split has no images of {', '.join(missing)}")
    if _UNASSIGNED in report.splits:
        n = report.splits[_UNASSIGNED]
        n = sum(n.values()) if isinstance(n, dict) else n
        out.append(f"{plural(n, 'image has', 'images have')} no split while others do")

    leaks = Counter(tuple(g.splits) for g in report.duplicates if g.leakage)
    if len(leaks) == 1:
        ((splits, n),) = leaks.items()
        word = "both " if len(splits) == 2 else ""
        out.append(f"{plural(n, 'image appears', 'images appear')} in {word}{_join(list(splits))} (leakage)")
    elif leaks:
        detail = ", ".join(f"{n} in {_join(list(s))}" for s, n in leaks.most_common())
        out.append(f"{report.n_leakage} images appear in more than one split (leakage: {detail})")
    inside = [g for g in report.duplicates if not g.leakage]
    if inside:
        n_files = sum(len(g.paths) for g in inside)
        out.append(
            f"{plural(len(inside), 'image is', 'images are')} stored more than once ({n_files} files)"
        )
    labels_of: dict[str, set] = defaultdict(set)
    for sample in dataset.samples:
        labels_of[str(sample.path)].add(sample.label)
    conflicting = sum(len(set().union(*(labels_of[p] for p in g.paths))) > 1 for g in report.duplicates)
    if conflicting:
        out.append(
            f"{plural(conflicting, 'duplicated image has', 'duplicated images have')} conflicting labels"
        )

    caps = report.captions
    if caps.get("n_images_without"):
        out.append(f"{plural(caps['n_images_without'], 'image has', 'images have')} no caption")
    if caps.get("n_over_token_limit"):
        out.append(
            f"{plural(caps['n_over_token_limit'], 'caption is', 'captions are')} longer than "
            f"{caps['max_tokens']} tokens and will be truncated"
        )
    return out
