"""Image-text datasets from annotation files: CLIP-Finetune pairs, JSON list/dict, JSONL, CSV/TSV.

Each entry becomes a Sample or, when it can't be used, a Problem naming ``file:line`` or
``file[index]``; only structural faults (unreadable or malformed file, no usable column) raise.
An entry's other scalar fields (sex, site, the patient column, ...) become the Sample's metadata.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipstudio.engine.data.dataset import Dataset, Problem, Sample
from clipstudio.engine.data.folders import split_of_folder
from clipstudio.engine.data.image_paths import ImageResolver, SkipEntry
from clipstudio.engine.data.images import IMAGE_EXTENSIONS
from clipstudio.engine.errors import DataError
from clipstudio.engine.storage.text_files import read_json, read_text

# Accepted key / column names, most specific first; matched case-insensitively.
IMAGE_KEYS = ("img", "image", "file_name", "filepath", "file", "path")
CAPTION_KEYS = ("caption", "text", "title", "captions")
LABEL_KEYS = ("class_name", "label", "class")  # a name column beats a numeric one
GROUP_KEYS = ("group", "patient_id", "patient", "case_id")
SPLIT_KEYS = ("split",)
# In a JSON dict whose values are objects (ARCH's captions.json), these name the image id.
ID_KEYS = ("uuid", "image_id", "id")

# Tried after the exact name when an id carries no extension (JSON dict datasets).
_ID_EXTENSIONS = tuple(sorted(IMAGE_EXTENSIONS)) + tuple(e.upper() for e in sorted(IMAGE_EXTENSIONS))
_MISSING = object()
ANNOTATION_FILE = "annotation file"  # how error messages name the file


@dataclass(frozen=True)
class Keys:
    """Which key (JSON) or column (CSV) holds each field; None where the file has none."""

    image: str | None
    caption: str | None = None
    label: str | None = None
    group: str | None = None
    split: str | None = None


def choose_keys(
    found: Sequence[str],
    where: Path,
    kind: str,
    image_key: str | None,
    caption_key: str | None,
    *,
    image_required: bool = True,
    image_names: Sequence[str] = IMAGE_KEYS,
) -> Keys:
    """Match the keys/columns a file has against the accepted names (or the ones the user gave)."""
    by_lower: dict[str, str] = {}
    for k in found:
        by_lower.setdefault(str(k).strip().lower(), k)
    listing = _listing(found)

    def named(wanted: str) -> str:
        if wanted in found:
            return wanted
        if wanted.strip().lower() in by_lower:
            return by_lower[wanted.strip().lower()]
        raise DataError(f"{where}: no {kind} named '{wanted}'; {kind}s found: {listing}.")

    def first(names: Sequence[str]) -> str | None:
        return next((by_lower[n] for n in names if n in by_lower), None)

    image = named(image_key) if image_key else first(image_names)
    if image is None and image_required:
        raise DataError(
            f"{where}: no image file {kind}; {kind}s found: {listing}; accepted names: "
            f"{', '.join(image_names)} (or set the image key)."
        )
    caption = named(caption_key) if caption_key else first(CAPTION_KEYS)
    label = first(LABEL_KEYS)
    if caption is None and label is None:
        raise DataError(
            f"{where}: no caption or label {kind}; {kind}s found: {listing}; accepted caption names: "
            f"{', '.join(CAPTION_KEYS)}, label names: {', '.join(LABEL_KEYS)} (or set the caption key)."
        )
    return Keys(image, caption, label, first(GROUP_KEYS), first(SPLIT_KEYS))


class SampleCollector:
    """Turns entries into Samples, merging repeats of one image and recording skipped entries."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.problems: list[Problem] = []
        self.entries = 0
        self._labels: list[str | None] = []
        self._index: dict[Path, int] = {}

    def skip(self, where: str, reason: str) -> None:
        self.entries += 1
        self.problems.append(Problem(where, reason))

    def add(
        self,
        where: str,
        record: object,
        keys: Keys,
        resolver: ImageResolver,
        split: str | None = None,
        *,
        image: object = _MISSING,
        extensions: Sequence[str] = (),
    ) -> None:
        self.entries += 1
        try:
            if not isinstance(record, dict):
                raise SkipEntry(f"expected an object, found {json_type_name(record)}")
            if image is _MISSING:
                image = record.get(keys.image, _MISSING)
            image = _image_text(image, keys.image or "image", ids=bool(extensions))
            captions = _captions(record.get(keys.caption, _MISSING), keys.caption) if keys.caption else []
            label = _label(record.get(keys.label, _MISSING), keys.label) if keys.label else None
            path = resolver.find(image, extensions)
        except SkipEntry as skip:
            self.problems.append(Problem(where, str(skip)))
            return
        group = _optional_text(record.get(keys.group)) if keys.group else None
        metadata = _metadata(record, keys)
        if split is None and keys.split:
            named = _optional_text(record.get(keys.split))
            split = (split_of_folder(named) or named) if named else None

        i = self._index.get(path)
        if i is None:
            self._index[path] = len(self.samples)
            self.samples.append(Sample(path=path, captions=captions, group=group, split=split, metadata=metadata))
            self._labels.append(label)
            return
        kept = self.samples[i]
        kept.captions += [c for c in captions if c not in kept.captions]
        for key, value in metadata.items():  # a repeated image's first value of a column stays
            kept.metadata.setdefault(key, value)
        if label is not None and self._labels[i] is None:
            self._labels[i] = label
        elif label is not None and label != self._labels[i]:
            self.problems.append(
                Problem(
                    where, f"image already listed with label '{self._labels[i]}'; label '{label}' ignored"
                )
            )

    def finish(self, fmt: str, root: Path, source: Path | None, what: Path) -> Dataset:
        """The Dataset; no usable entry at all is a DataError naming ``what``."""
        if not self.samples:
            if not self.entries:
                raise DataError(f"{what}: no entries found.")
            first = self.problems[0]
            hint = ""
            if any(p.reason.startswith("refused:") for p in self.problems):
                hint = " Paths outside the dataset folder are refused unless allowed (allow_outside_root)."
            raise DataError(
                f"{what}: no usable images; all {self.entries} entries were skipped "
                f"(first: {first.path}: {first.reason}).{hint}"
            )
        class_names = sorted({n for n in self._labels if n is not None}, key=_label_order)
        index = {name: i for i, name in enumerate(class_names)}
        for sample, name in zip(self.samples, self._labels, strict=True):
            sample.label = index[name] if name is not None else None
        return Dataset(
            root=Path(os.path.realpath(root)),
            format=fmt,
            samples=self.samples,
            class_names=class_names,
            problems=self.problems,
            source=source,
        )


def read_annotation_files(
    fmt: str,
    files: Sequence[tuple[str | None, Path]],
    *,
    root: Path,
    source: Path | None,
    image_key: str | None = None,
    caption_key: str | None = None,
    images_dir: Path | None = None,
    allow_outside_root: bool = False,
) -> Dataset:
    """Read one annotation file, or one per split, into a Dataset of format ``fmt``.

    root: the dataset folder image paths must stay inside.
    """
    collector = SampleCollector()
    for split, path in files:
        path = Path(os.path.realpath(path))
        bases = [images_dir] if images_dir else _default_bases(fmt, path)
        resolver = ImageResolver(bases, images_dir or root, allow_outside_root)
        if path.suffix.lower() == ".json":
            data = read_json(path, ANNOTATION_FILE)
            if isinstance(data, list):
                _add_json_list(collector, path, data, resolver, split, image_key, caption_key)
            elif isinstance(data, dict):
                _add_json_dict(collector, path, data, resolver, split, image_key, caption_key)
            else:
                raise DataError(
                    f"{path}: expected a JSON list of entries or an object mapping image ids to "
                    f"captions, found {json_type_name(data)}."
                )
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            _add_jsonl(collector, path, resolver, split, image_key, caption_key)
        else:
            _add_csv(collector, path, resolver, split, image_key, caption_key)
    what = files[0][1] if len(files) == 1 else root
    return collector.finish(fmt, images_dir or root, source, Path(what))


def _default_bases(fmt: str, path: Path) -> list[Path]:
    """Folders relative image paths are tried against, in order."""
    here = path.parent
    if fmt == "clip_finetune":
        names = ["imgs", "images", ""]
    elif fmt == "json_dict":
        names = ["images", "imgs", ""]
    else:
        names = ["", "images", "imgs"]
    return [here / n for n in names if not n or (here / n).is_dir()]


def _add_json_list(collector, path, data, resolver, split, image_key, caption_key) -> None:
    found: dict[str, None] = {}
    for item in data:
        if isinstance(item, dict):
            found.update(dict.fromkeys(item))
    if data and not found:
        raise DataError(
            f'{path}: expected a list of objects like {{"img": ..., "caption": ...}}, '
            f"found a list of {json_type_name(data[0])}."
        )
    keys = choose_keys(list(found), path, "key", image_key, caption_key) if data else Keys(None)
    for i, item in enumerate(data):
        collector.add(f"{path}[{i}]", item, keys, resolver, split)


def _add_json_dict(collector, path, data, resolver, split, image_key, caption_key) -> None:
    """``{image_id: caption | [captions] | {caption: ..., uuid: ...}}``; ids may lack an extension."""
    plain = Keys(image=None, caption="caption")
    found: dict[str, None] = {}
    for value in data.values():
        if isinstance(value, dict):
            found.update(dict.fromkeys(value))
    objects = None
    if found:
        objects = choose_keys(
            list(found), path, "key", image_key, caption_key,
            image_required=False, image_names=IMAGE_KEYS + ID_KEYS,
        )  # fmt: skip
    for key, value in data.items():
        where = f"{path}[{json.dumps(key, ensure_ascii=False)}]"
        if isinstance(value, dict) and objects is not None:
            image = value.get(objects.image, key) if objects.image else key
            collector.add(where, value, objects, resolver, split, image=image, extensions=_ID_EXTENSIONS)
        else:
            record = {"caption": value}
            collector.add(where, record, plain, resolver, split, image=key, extensions=_ID_EXTENSIONS)


def _add_jsonl(collector, path, resolver, split, image_key, caption_key) -> None:
    records: list[tuple[str, object]] = []
    found: dict[str, None] = {}
    # Split on "\n" only: JSON strings may hold U+2028 and friends, which str.splitlines breaks on.
    for lineno, line in enumerate(read_text(path, ANNOTATION_FILE).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append((where, SkipEntry(f"not valid JSON ({exc.msg}, column {exc.colno})")))
            continue
        except RecursionError:
            records.append((where, SkipEntry("not usable JSON (nested too deeply)")))
            continue
        except ValueError:  # Python refuses integers of more than 4,300 digits
            records.append((where, SkipEntry("not usable JSON (a number too long to read)")))
            continue
        if isinstance(record, dict):
            found.update(dict.fromkeys(record))
        records.append((where, record))
    keys = choose_keys(list(found), path, "key", image_key, caption_key) if found else Keys(None)
    for where, record in records:
        if isinstance(record, SkipEntry):
            collector.skip(where, str(record))
        else:
            collector.add(where, record, keys, resolver, split)


def _add_csv(collector, path, resolver, split, image_key, caption_key) -> None:
    text = read_text(path, ANNOTATION_FILE)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(first_line)
    # Long radiology reports exceed the csv module's 128 KiB default field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise DataError(f"{path}: the file is empty; expected a header row naming the columns.")
        keys = choose_keys(header, path, "column", image_key, caption_key)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            record = {h: cell for h, cell in zip(header, row, strict=False) if h}  # short rows: missing keys
            collector.add(f"{path}:{reader.line_num}", record, keys, resolver, split)
    except csv.Error as exc:
        raise DataError(f"{path}: can't read it as CSV at line {reader.line_num} ({exc}).") from None


def sniff_delimiter(header_line: str) -> str:
    """The delimiter a CSV header line uses: comma, tab, semicolon or bar (comma when none)."""
    counts = {d: header_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _image_text(value: object, key: str, *, ids: bool) -> str:
    if value is _MISSING:
        raise SkipEntry(f"missing '{key}'")
    if ids and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SkipEntry(f"'{key}' is {json_type_name(value)}; expected a file path")
    if not value.strip():
        raise SkipEntry(f"'{key}' is empty")
    return value


def _captions(value: object, key: str) -> list[str]:
    """One caption or several; empty and null ones are dropped, none left is a SkipEntry."""
    if value is _MISSING:
        raise SkipEntry(f"missing '{key}'")
    if value is None:
        raise SkipEntry(f"'{key}' is null")
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, list):
        raise SkipEntry(f"'{key}' is {json_type_name(value)}; expected text or a list of text")
    bad = next((v for v in value if v is not None and not isinstance(v, str)), None)
    if bad is not None:
        raise SkipEntry(f"'{key}' holds {json_type_name(bad)}; expected text")
    texts: list[str] = []
    for v in value:
        if v and v.strip() and v.strip() not in texts:
            texts.append(v.strip())
    if not texts:
        raise SkipEntry(f"'{key}' is empty")
    return texts


def _label(value: object, key: str) -> str:
    if value is _MISSING:
        raise SkipEntry(f"missing '{key}'")
    if value is None:
        raise SkipEntry(f"'{key}' is null")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        raise SkipEntry(f"'{key}' is {json_type_name(value)}; expected a class name or number")
    if not value.strip():
        raise SkipEntry(f"'{key}' is empty")
    return value.strip()


def _metadata(record: dict, keys: Keys) -> dict[str, str]:
    """The entry's other scalar fields as text (the group column too: it is a grouping); empty ones left out."""
    used = {keys.image, keys.caption, keys.label, keys.split}
    out = {}
    for key, value in record.items():
        if key in used or not isinstance(key, str) or not key.strip():
            continue
        text = _scalar_text(value)
        if text is not None:
            out[key.strip()] = text
    return out


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None  # null, empty, lists and objects: no value


def _optional_text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _label_order(name: str) -> tuple[int, int, str]:
    # Numeric labels sort as numbers ("2" before "10"), after that by text.
    stripped = name.lstrip("-")
    if stripped.isdigit() and stripped.isascii() and len(stripped) <= 4000:  # int() refuses longer ones
        return (0, int(name), name)
    return (1, 0, name)


def json_type_name(value: object) -> str:
    """How a parsed JSON value is named in messages ("null", "a number", "an object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _listing(names: Iterable[str], limit: int = 20) -> str:
    # repr() for names holding line breaks or other control characters: the message stays one line.
    names = [str(n) if str(n).isprintable() else repr(str(n)) for n in names]
    if not names:
        return "none"
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
