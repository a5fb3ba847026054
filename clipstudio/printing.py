"""The evaluation report as a PDF, printed by Qt itself (no browser, no new dependency).

The report is HTML (``clipstudio.engine.evaluation.report``); Qt's rich-text engine (``QTextDocument``)
lays it out in pages and ``QPdfWriter`` prints them. That engine reads HTML 4 and a subset of CSS but
not inline SVG, so each chart is first drawn by Qt's SVG renderer into an image three times the chart's
size (sharp on paper) and put in the page in its place. Thumbnails are JPEG ``data:`` images, which the
rich-text engine reads as they are.

Used by the ``eval`` and ``zeroshot`` commands (``--report FILE.pdf``) and the app's "Export report…";
it needs Qt's GUI module but no window or display: without one (a Linux server) it draws offscreen.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QLocale, QMarginsF, QRectF, QSizeF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtSvg import QSvgRenderer

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.report import check_report_path, is_pdf_report, write_report
from clipstudio.engine.storage.atomic import atomic_write_bytes

__all__ = ["html_to_pdf", "write_report_file", "write_report_pdf"]

CHART_SCALE = 3  # chart pixels per layout pixel: 288 dpi on paper, sharp lines and text
PRINT_DPI = 300
MARGIN_MM = 15.0
LAYOUT_DPI = 96  # CSS pixels: the report's sizes (charts, thumbnails, padding) are given in them
FOOTER_PX = 28.0  # below each page's text: the report's title and the page number
FOOTER_PX_FONT = 11  # about 8 points
FOOTER_COLOUR = "#777777"
KEEP_WITH_HEADING = 0.08  # a heading this near the foot of a page (a share of its height) moves to the next
_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
_LETTER_COUNTRIES = {QLocale.Country.UnitedStates, QLocale.Country.Canada, QLocale.Country.Mexico}
_app: QGuiApplication | None = None  # the one this module made, kept alive for the process


def html_to_pdf(html: str) -> bytes:
    """The report's HTML printed as a PDF document: A4 (US Letter in the US, Canada and Mexico), a heading
    never alone at the foot of a page, the title and "page N of M" at the foot of every page."""
    _ensure_application()
    document = QTextDocument()
    numbers = itertools.count(1)
    html = _SVG.sub(lambda match: _chart_image(document, match.group(0), f"chart-{next(numbers)}.png"), html)
    document.setHtml(html)
    title = document.metaInformation(QTextDocument.MetaInformation.DocumentTitle) or "Evaluation report"

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setResolution(PRINT_DPI)
    writer.setPageSize(QPageSize(_page_size()))
    writer.setPageMargins(QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), QPageLayout.Unit.Millimeter)
    writer.setTitle(title)
    writer.setCreator("CLIP Studio")

    # Laid out at screen resolution (CSS pixels, as in a browser), drawn scaled to the printer's.
    scale = PRINT_DPI / LAYOUT_DPI
    paint = writer.pageLayout().paintRectPixels(PRINT_DPI)
    width, height = paint.width() / scale, paint.height() / scale
    body = height - FOOTER_PX
    document.setPageSize(QSizeF(width, body))
    _keep_headings_with_text(document, body)
    pages = document.pageCount()
    painter = QPainter(writer)
    painter.scale(scale, scale)
    for page in range(pages):
        if page:
            writer.newPage()
        painter.save()
        painter.translate(0, -page * body)
        document.drawContents(painter, QRectF(0, page * body, width, body))
        painter.restore()
        _footer(painter, QRectF(0, body, width, FOOTER_PX), title, f"page {page + 1} of {pages}")
    painter.end()
    buffer.close()
    return bytes(data.data())


def write_report_pdf(path: str | os.PathLike, html: str) -> Path:
    """Print the report to ``path`` as a PDF, atomically; a folder or unwritable place is a ConfigError."""
    target = check_report_path(path)
    pdf = html_to_pdf(html)
    try:
        return atomic_write_bytes(target, pdf)
    except OSError as exc:
        raise ConfigError(f"{target}: the report can't be written ({exc.strerror or exc}).") from None


def write_report_file(path: str | os.PathLike, html: str) -> Path:
    """Write the report as the file name asks: a PDF for ``.pdf``, else the self-contained HTML file."""
    return write_report_pdf(path, html) if is_pdf_report(path) else write_report(path, html)


def _chart_image(document: QTextDocument, svg: str, name: str) -> str:
    """Draw one inline SVG chart into the image resource ``name`` of ``document``; the ``<img>`` that shows it."""
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    size = renderer.defaultSize()
    image = QImage(size * CHART_SCALE, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    return f'<img src="{name}" width="{size.width()}" height="{size.height()}">'  # laid out at the chart's size


def _keep_headings_with_text(document: QTextDocument, page_height: float) -> None:
    """Start a section on a new page when its heading would otherwise end a page: when the first thing under
    it (a chart, a paragraph, a table's first row) ends on the next page, or the heading is in the last lines
    of its page."""
    layout = document.documentLayout()
    block = document.begin()
    while block.isValid():
        following = block.next()
        if block.blockFormat().headingLevel() in (1, 2) and following.isValid():
            document.pageCount()  # lays the whole document out: positions below are final, not partial
            top = layout.blockBoundingRect(block).top()
            # An image can't be cut: it goes to the next page whole, where this rect's bottom would reach.
            alone = layout.blockBoundingRect(following).bottom() // page_height > top // page_height
            if alone or top % page_height > page_height * (1 - KEEP_WITH_HEADING):
                fmt = block.blockFormat()
                fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
                QTextCursor(block).setBlockFormat(fmt)
                document.markContentsDirty(0, document.characterCount())  # lay out again from here on
        block = following


def _footer(painter: QPainter, rect: QRectF, left: str, right: str) -> None:
    painter.save()
    font = QFont(painter.font())
    font.setPixelSize(FOOTER_PX_FONT)
    painter.setFont(font)
    painter.setPen(QColor(FOOTER_COLOUR))
    flags = Qt.AlignmentFlag.AlignBottom
    painter.drawText(rect, flags | Qt.AlignmentFlag.AlignRight, right)
    elided = QFontMetricsF(font).elidedText(left, Qt.TextElideMode.ElideMiddle, rect.width() * 0.75)
    painter.drawText(rect, flags | Qt.AlignmentFlag.AlignLeft, elided)
    painter.restore()


def _page_size() -> QPageSize.PageSizeId:
    letter = QLocale.system().territory() in _LETTER_COUNTRIES
    return QPageSize.PageSizeId.Letter if letter else QPageSize.PageSizeId.A4


def _ensure_application() -> None:
    """Qt draws text only with a GUI application: make one where none runs (the command line),
    offscreen where there is no display (a Linux server, CI)."""
    global _app
    if QGuiApplication.instance() is not None:
        return
    display_vars = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    if sys.platform.startswith("linux") and not any(os.environ.get(name) for name in display_vars):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    _app = QGuiApplication([sys.argv[0] if sys.argv else "clipstudio"])
