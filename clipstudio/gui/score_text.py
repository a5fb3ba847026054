"""Scores in words with their context, shared by the Prompts and Results screens: the 95% interval
(or why there is none) and the chance level an accuracy should be read against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Below this many images an interval that collapses to one value is a small-sample artefact.
FEW_IMAGES = 30

PART_WORDS = {
    "val": "validation images",
    "carved-val": "validation images",
    "train": "training images (there is no validation part)",
    "test": "test images",
    "carved-test": "test images",
    "all": "all images",
}


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def interval_text(ci: Sequence[float] | None, n: int) -> str:
    """'  (95% CI 80.1 % – 92.3 %)', why there is no interval, or "" when none was computed."""
    if not ci:
        return ""
    lo, hi = ci
    if lo == hi:  # every resample gave the same value: "33.3 % – 33.3 %" would claim a certainty it lacks
        why = f"{n} images are too few" if n < FEW_IMAGES else "every resample gives the same value"
        return f"  (95% CI undefined: {why})"
    return f"  (95% CI {percent(lo)} – {percent(hi)})"


def class_counts(result: Any) -> dict[str, int]:
    """Images per class of a ``ZeroShotResult`` (the support of each class), in class order."""
    return {name: int(result.per_class[name]["support"]) for name in result.class_names}


def chance_text(counts: Mapping[str, int]) -> str:
    """What guessing would score on the same images: 1 / classes, and always answering the largest class.

    ``counts``: the number of images of each class (``class_counts`` of a result).
    """
    n = sum(counts.values())
    if not counts or not n:
        return ""
    largest = max(counts, key=lambda name: counts[name])
    share = counts[largest] / n
    present = sum(1 for count in counts.values() if count)  # balanced accuracy averages these classes
    if len(set(counts.values())) == 1:
        return (f"For comparison: the {len(counts)} classes are equally common here, so guessing scores "
                f"{percent(1 / len(counts))} (accuracy and balanced accuracy).")
    return (f"For comparison: guessing at random among {len(counts)} classes scores {percent(1 / len(counts))}; "
            f"always answering “{largest}” (the most common class, {percent(share)} of these images) scores "
            f"{percent(share)} accuracy and {percent(1 / present)} balanced accuracy.")


def scored_text(result: Any, total: int) -> str:
    """'Scored 120 images.', or how many of ``total`` were scored and why the others were not."""
    if result.n == total and not result.problems:
        return f"Scored {result.n} images."
    text = f"Scored {result.n} of the {total} images"
    problems = list(result.problems)
    if problems:
        first = problems[0]
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        text += (f"; {len(problems)} could not be read ({Path(first.path).name}: {first.reason}{more})")
    return text + "."
