"""Counts in words for messages: "1 image", "2 images", "1,200 images"."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` with ``one`` or ``many`` (default: ``one`` + "s"), thousands separated: ``plural(1, "image")``
    is "1 image"; ``plural(3, "copy", "copies")`` is "3 copies"; ``plural(2, "image is", "images are")``."""
    return f"{n:,} {one if n == 1 else (many if many is not None else one + 's')}"
