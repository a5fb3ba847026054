"""The report as a PDF: printed by Qt, every chart and thumbnail in it, headings kept with what follows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from PySide6.QtCore import QSizeF
from PySide6.QtGui import QTextDocument

from clipstudio.engine.data.health import health_report
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.report import render_report
from clipstudio.engine.prompts import PromptSet
from clipstudio.printing import _keep_headings_with_text, html_to_pdf, write_report_file, write_report_pdf
from tests.engine.evaluation.test_report import _scored


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def _images(pdf: bytes) -> int:
    return len(re.findall(rb"/Subtype\s*/Image\b", pdf))


@pytest.fixture
def report_html(tmp_path):
    scoring, part, ds = _scored(tmp_path)
    return render_report(scoring, part, ds, health=health_report(ds, check_images=False), model_spec="fake",
                         prompts=PromptSet(templates=["a {class_name} square"]),
                         created=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc))


def test_the_pdf_has_every_chart_and_example_image_of_the_report_on_several_pages(qapp, report_html):
    charts, thumbnails = report_html.count("<svg"), report_html.count('src="data:image/jpeg')
    assert charts == 2 and thumbnails == 4  # ROC and reliability charts; the four misclassified images

    pdf = html_to_pdf(report_html)

    assert pdf.startswith(b"%PDF-")
    assert _images(pdf) == charts + thumbnails  # each SVG chart drawn into an image, each thumbnail kept
    assert _pages(pdf) >= 3
    title = "Evaluation report: ".encode("utf-16-be")
    assert title in pdf  # the document's title, as PDF readers show it


def test_write_report_file_picks_the_format_by_the_file_name(qapp, tmp_path, report_html):
    html_path = write_report_file(tmp_path / "report.html", report_html)
    pdf_path = write_report_file(tmp_path / "report.PDF", report_html)

    assert html_path.read_text(encoding="utf-8") == report_html
    assert pdf_path.read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["report.PDF", "report.html"]


def test_a_pdf_into_a_missing_folder_is_one_clear_error_and_writes_nothing(qapp, tmp_path, report_html):
    target = tmp_path / "missing" / "report.pdf"
    with pytest.raises(ConfigError, match="does not exist"):
        write_report_pdf(target, report_html)
    assert not target.parent.exists()


def test_a_heading_is_never_the_last_thing_on_a_page(qapp):
    # Paragraphs of varied length, each section opening with a tall unbreakable block (as a chart is).
    sections = "".join(
        f"<h2>Section {i}</h2><div style='line-height:1'><img width='300' height='{150 + 40 * (i % 4)}'></div>"
        + "<p>text</p>" * (i % 5)
        for i in range(24)
    )
    document = QTextDocument()
    document.setHtml(f"<html><body>{sections}</body></html>")
    page = 700.0
    document.setPageSize(QSizeF(600, page))

    _keep_headings_with_text(document, page)

    layout, block, checked = document.documentLayout(), document.begin(), 0
    while block.isValid():
        if block.blockFormat().headingLevel() == 2:
            heading, following = layout.blockBoundingRect(block), layout.blockBoundingRect(block.next())
            assert following.bottom() // page == heading.top() // page, block.text()
            checked += 1
        block = block.next()
    assert checked == 24 and document.pageCount() > 4
