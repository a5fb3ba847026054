"""The HTML report's building blocks: inline SVG line charts, tables, lists and embedded thumbnails.

Nothing here is fetched when the file opens: charts are drawn as SVG by hand (no plotting library),
images are small JPEGs in data: URIs. Every text is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from clipstudio.engine.data.images import load_image
from clipstudio.engine.errors import ClipStudioError

__all__ = ["PALETTE", "Series", "bullet_list", "legend", "line_chart", "table", "thumbnail"]

# Colour-blind-safe (Okabe-Ito), in the order series take them.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 40  # margins around the plot area, px
_TICKS = 5
THUMBNAIL_PX = 96
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Series:
    """One line (or, with ``markers``, dots joined by a line) of a chart."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str = PALETTE[0]
    dashed: bool = False
    markers: bool = False


def line_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    width: int = 360,
    height: int = 300,
    title: str = "",
) -> str:
    """An ``<svg>`` element: ``series`` over shared axes; ``diagonal`` draws the grey y = x line.

    Ranges default to the data's (padded when flat). Non-finite points are left out.
    """
    points = [[(float(x), float(y)) for x, y in zip(s.x, s.y, strict=True) if _finite(x, y)] for s in series]
    xs = [x for line in points for x, _ in line]
    ys = [y for line in points for _, y in line]
    x0, x1 = x_range or _span(xs)
    y0, y1 = y_range or _span(ys)
    pw, ph = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return _TOP + ph - (y - y0) / (y1 - y0) * ph

    out = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or y_label)}" class="chart">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    for i in range(_TICKS + 1):
        tx = x0 + (x1 - x0) * i / _TICKS
        ty = y0 + (y1 - y0) * i / _TICKS
        out.append(f'<line x1="{px(tx):.1f}" y1="{_TOP}" x2="{px(tx):.1f}" y2="{_TOP + ph}" stroke="#eee"/>')
        out.append(
            f'<line x1="{_LEFT}" y1="{py(ty):.1f}" x2="{_LEFT + pw}" y2="{py(ty):.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{px(tx):.1f}" y="{_TOP + ph + 14}" text-anchor="middle">{_tick(tx)}</text>')
        out.append(f'<text x="{_LEFT - 4}" y="{py(ty) + 4:.1f}" text-anchor="end">{_tick(ty)}</text>')
    out.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        out.append(
            f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" '
            'stroke="#aaa" stroke-dasharray="4 3"/>'
        )
    for s, line in zip(series, points, strict=True):
        if not line:
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<polyline points="{coords}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        if s.markers or len(line) == 1:
            out.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{s.colour}"/>' for x, y in line
            )
    out.append(
        f'<text x="{_LEFT + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="12" y="{_TOP + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + ph / 2:.1f})">{escape(y_label)}</text>'
    )
    out.append("</svg>")
    return "".join(out)


def legend(series: Sequence[Series]) -> str:
    """The chart's key as HTML: a line drawn in the series' colour (broken for dashed lines) and its label.

    The line is text, not a CSS border, so it shows in the printed PDF as well as in a browser.
    """
    items = []
    for s in series:
        line = "&ndash; &ndash;" if s.dashed else "&mdash;&mdash;"
        items.append(
            f'<span class="key"><b class="swatch" style="color:{s.colour}">{line}</b> {escape(s.label)}</span>'
        )
    return f'<div class="legend">{"&nbsp;&nbsp; ".join(items)}</div>'


def table(header: Sequence[str], rows: Iterable[Sequence], left: int = 1) -> str:
    """An HTML table, no header row when ``header`` is all blank; the first ``left`` columns are
    left-aligned (names), the rest right-aligned (numbers)."""

    def cell(tag: str, i: int, value) -> str:
        css = ' class="l"' if i < left else ""
        return f"<{tag}{css}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header)) if any(header) else ""
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def bullet_list(items: Iterable[str], css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<ul{cls}>" + "".join(f"<li>{escape(str(i))}</li>" for i in items) + "</ul>"


def thumbnail(path: str) -> str:
    try:
        image = load_image(path)
    except ClipStudioError as exc:  # an unreadable example image must not lose the whole report
        return f'<p class="note">(image not shown: {escape(str(exc))})</p>'
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    # The shown size as attributes too (fitted to the thumbnail box, so small images are enlarged as in a
    # browser): the rich-text engine that prints the PDF ignores CSS sizes on images.
    fit = THUMBNAIL_PX / max(image.width, image.height)
    width, height = max(1, round(image.width * fit)), max(1, round(image.height * fit))
    return (
        f'<img alt="{escape(Path(path).name)}" width="{width}" height="{height}" '
        f'src="data:image/jpeg;base64,{data}">'
    )


def _finite(x: float | None, y: float | None) -> bool:
    return x is not None and y is not None and math.isfinite(x) and math.isfinite(y)


def _span(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 0.01:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.1e}"
