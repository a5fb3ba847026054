"""The dataset health report on screen: class counts chart, warnings, unreadable files, duplicates.

Takes the plain dict of ``HealthReport.to_dict()`` (``AppState.health`` holds the report itself). pyqtgraph is
imported when the first chart is drawn, not at import, so the window paints quickly.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

IMBALANCE_BANNER_RATIO = 3.0
# One colour per split (train, val, test, other), readable on light and dark backgrounds.
SPLIT_COLOURS = ["#3b82c4", "#e0913a", "#4aa564", "#9a6fc0", "#888888"]
_ENTRY_SUFFIX = re.compile(r"(:\d+|\[[^\]]*\])$")  # "file:12" / "file[key]" problem paths


def reveal_in_file_manager(path: str) -> None:
    """Show the file in Explorer (selected) or open its folder in the OS file manager."""
    target = Path(path)
    if not target.exists():
        target = Path(_ENTRY_SUFFIX.sub("", path))
    if sys.platform == "win32" and target.exists():
        # Two arguments, so Qt's quoting of a path with spaces stays readable to Explorer.
        QProcess.startDetached("explorer.exe", ["/select,", str(target)])
        return
    folder = target if target.is_dir() else target.parent
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def _fmt_stats(stats: dict[str, Any], unit: str = "") -> str:
    med = stats["median"]
    med = int(med) if float(med).is_integer() else round(med, 1)
    return f"{stats['min']}–{stats['max']}{unit} (median {med}{unit})"


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().setVisible(False)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    for col in range(len(headers) - 1):
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def _fill(table: QTableWidget, rows: list[list[str]], tooltips: bool = True) -> None:
    table.setUpdatesEnabled(False)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if tooltips:
                item.setToolTip(text)
            table.setItem(r, c, item)
    table.setUpdatesEnabled(True)


class HealthView(QWidget):
    """Shows one health report dict; ``set_report(None)`` clears it."""

    problem_activated = Signal(str)  # a problem path the user double-clicked (already revealed)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: dict[str, Any] | None = None
        self.chart_categories: list[str] = []  # bar chart rows (classes, or splits when unlabelled)
        self.chart_series: dict[str, list[int]] = {}  # series name (split or "all") -> count per category
        self._plot = None

        self.banner = QLabel()
        self.banner.setObjectName("warningBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel#warningBanner { background: #fff3cd; color: #664d03; border: 1px solid #e6c76a;"
            " border-radius: 4px; padding: 6px 8px; }"
        )
        self.banner.hide()

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setTextFormat(Qt.TextFormat.RichText)

        self.chart_title = QLabel("<b>Images per class</b>")
        self.chart_box = QWidget()
        self.chart_box.setMinimumHeight(180)
        self._chart_layout = QVBoxLayout(self.chart_box)
        self._chart_layout.setContentsMargins(0, 0, 0, 0)

        self.problems_table = _table(["File", "Reason"])
        # The reason is short and must be read whole; a long path gives way, cut in its middle.
        self.problems_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        problems_header = self.problems_table.horizontalHeader()
        problems_header.setStretchLastSection(False)
        problems_header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        problems_header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.problems_table.cellDoubleClicked.connect(self._on_problems_table_double_clicked)
        self.problems_table.setToolTip("Double-click a row to show the file in the file manager")
        self.duplicates_table = _table(["Leakage", "Splits", "Copies", "Files"])
        self.duplicates_table.cellDoubleClicked.connect(self._on_duplicates_table_double_clicked)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.problems_table, "Unreadable / skipped")
        self.tabs.addTab(self.duplicates_table, "Duplicates && leakage")

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.summary, 0, 0)
        grid.addWidget(self.stats, 1, 0)
        grid.addWidget(self.warnings, 2, 0)
        grid.setRowStretch(3, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addLayout(grid)
        layout.addWidget(self.chart_title)
        layout.addWidget(self.chart_box, 3)
        layout.addWidget(self.tabs, 2)
        self._filler = QWidget()  # takes the spare height when there are no tables to show
        layout.addWidget(self._filler, 1)
        self.set_report(None)

    # --- public ------------------------------------------------------------------------------------
    def set_report(self, report: dict[str, Any] | None) -> None:
        self.report = report
        if report is None:
            self.summary.setText("No dataset checked yet.")
            for label in (self.stats, self.warnings):
                label.clear()
            self.banner.hide()
            self._set_chart([], {})
            _fill(self.problems_table, [])
            _fill(self.duplicates_table, [])
            self._set_tab_counts(0, 0, 0)
            self.tabs.hide()
            self._filler.show()
            return
        self._show_summary(report)
        self._show_banner(report)
        self._show_stats(report)
        warnings = report.get("warnings", [])
        if not self.banner.isHidden():  # the banner already says it, at length
            warnings = [w for w in warnings if not w.startswith("Class imbalance")]
        self._show_warnings(warnings, bool(report.get("warnings")))
        categories, series = chart_data(report)
        self._set_chart(categories, series)
        problems = report.get("problems", [])
        _fill(self.problems_table, [[p["path"], p["reason"]] for p in problems])
        duplicates = report.get("duplicates", [])
        _fill(
            self.duplicates_table,
            [
                [
                    "Yes" if g["leakage"] else "No",
                    ", ".join(g["splits"]) or "—",
                    str(len(g["paths"])),
                    "  |  ".join(g["paths"]),
                ]
                for g in duplicates
            ],
        )
        self._set_tab_counts(len(problems), len(duplicates), report.get("n_leakage", 0))
        self.tabs.setVisible(bool(problems or duplicates))
        self._filler.setVisible(not (problems or duplicates))
        if not problems and duplicates:
            self.tabs.setCurrentIndex(1)

    def problem_paths(self) -> list[str]:
        return [self.problems_table.item(r, 0).text() for r in range(self.problems_table.rowCount())]

    # --- parts -------------------------------------------------------------------------------------
    def _show_summary(self, report: dict[str, Any]) -> None:
        parts = [f"<b>{report['n_images']:,}</b> images"]
        if report.get("classes"):
            parts.append(f"<b>{len(report['classes'])}</b> classes")
        splits = report.get("splits") or {}
        if splits:
            parts.append("splits: " + ", ".join(splits))
        parts.append(f"<b>{report.get('n_unreadable', 0)}</b> unreadable")
        parts.append(f"<b>{report.get('n_leakage', 0)}</b> leaking across splits")
        if not report.get("complete", True):
            parts.append("<i>check stopped early</i>")
        self.summary.setText(" · ".join(parts))

    def _show_banner(self, report: dict[str, Any]) -> None:
        ratio = report.get("imbalance_ratio")
        if ratio is None or ratio < IMBALANCE_BANNER_RATIO:
            self.banner.hide()
            return
        present = {k: v for k, v in report["classes"].items() if v > 0}
        big, small = max(present, key=present.get), min(present, key=present.get)
        self.banner.setText(
            f"⚠ Class imbalance {ratio:.1f}:1 — {big} has {present[big]:,} images, {small} only "
            f"{present[small]:,}. Accuracy will favour the large classes: look at balanced accuracy, "
            "or add images of the small ones."
        )
        self.banner.show()

    def _show_stats(self, report: dict[str, Any]) -> None:
        lines = []
        sizes = report.get("image_sizes") or {}
        if sizes:
            lines.append(
                f"Image width {_fmt_stats(sizes['width'], ' px')}, height {_fmt_stats(sizes['height'], ' px')}; "
                f"{sizes['n_distinct']:,} distinct size{'s' if sizes['n_distinct'] != 1 else ''}"
            )
        caps = report.get("captions") or {}
        if caps.get("n"):
            line = f"{caps['n']:,} captions, {_fmt_stats(caps['chars'])} characters"
            if "tokens" in caps:
                line += f", {_fmt_stats(caps['tokens'])} tokens"
            if caps.get("n_over_token_limit"):
                line += f"; {caps['n_over_token_limit']:,} over the {caps['max_tokens']}-token limit"
            lines.append(line)
        self.stats.setText("\n".join(lines))
        self.stats.setVisible(bool(lines))

    def _show_warnings(self, warnings: list[str], any_warning: bool = False) -> None:
        if not warnings and any_warning:
            self.warnings.clear()
            return
        if not warnings:
            self.warnings.setText("<span style='color:#2e7d32'>✓ No problems found.</span>")
            return
        items = "".join(f"<li>{_escape(w)}</li>" for w in warnings)
        self.warnings.setText(f"<b>Warnings</b><ul style='margin-top:2px'>{items}</ul>")

    def _set_tab_counts(self, n_problems: int, n_duplicates: int, n_leakage: int) -> None:
        self.tabs.setTabText(0, f"Unreadable / skipped ({n_problems})")
        leak = f", {n_leakage} leaking" if n_leakage else ""
        self.tabs.setTabText(1, f"Duplicates && leakage ({n_duplicates}{leak})")

    def _set_chart(self, categories: list[str], series: dict[str, list[int]]) -> None:
        self.chart_categories, self.chart_series = categories, series
        has_chart = bool(categories)
        self.chart_title.setVisible(has_chart)
        self.chart_box.setVisible(has_chart)
        if not has_chart:
            if self._plot is not None:
                self._plot.clear()
            return
        title = "Images per class" if self.report and self.report.get("classes") else "Images per split"
        if len(series) > 1:  # the legend, in the title line, where it can't cover a bar
            title += "&nbsp;&nbsp;" + "&nbsp;&nbsp;".join(
                f"<span style='color:{SPLIT_COLOURS[min(i, len(SPLIT_COLOURS) - 1)]}'>■</span> {_escape(name)}"
                for i, name in enumerate(series)
            )
        self.chart_title.setText(f"<b>{title}</b>")
        plot = self._ensure_plot()
        plot.clear()
        import pyqtgraph as pg

        n = len(series)
        height = 0.8 / max(n, 1)
        for s, counts in enumerate(series.values()):
            ys = [i - 0.4 + height * (s + 0.5) for i in range(len(categories))]
            colour = SPLIT_COLOURS[min(s, len(SPLIT_COLOURS) - 1)]
            bars = pg.BarGraphItem(x0=0, y=ys, height=height * 0.9, width=counts, brush=colour, pen=None)
            plot.addItem(bars)
        plot.getAxis("left").setTicks([[(i, _short(c)) for i, c in enumerate(categories)]])
        plot.setYRange(-0.6, len(categories) - 0.4, padding=0)
        plot.setXRange(0, max((max(c) for c in series.values() if c), default=1) * 1.05, padding=0)
        natural = 70 + 22 * len(categories) * n + 12 * len(categories)
        self.chart_box.setMinimumHeight(min(natural, 180))
        self.chart_box.setMaximumHeight(max(natural, 180))

    def _ensure_plot(self):
        if self._plot is None:
            import pyqtgraph as pg

            plot = pg.PlotWidget(background=None)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.invertY(True)
            plot.showGrid(x=True, y=False, alpha=0.25)
            ink = self.palette().color(self.foregroundRole())
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setTextPen(ink)
                axis.setPen(ink)
            plot.setLabel("bottom", "images")
            self._chart_layout.addWidget(plot)
            self._plot = plot
        return self._plot

    # --- slots -------------------------------------------------------------------------------------
    def _on_problems_table_double_clicked(self, row: int, _column: int) -> None:
        path = self.problems_table.item(row, 0).text()
        reveal_in_file_manager(path)
        self.problem_activated.emit(path)

    def _on_duplicates_table_double_clicked(self, row: int, _column: int) -> None:
        paths = (self.report or {}).get("duplicates", [])[row]["paths"]
        if paths:
            reveal_in_file_manager(paths[0])


def chart_data(report: dict[str, Any]) -> tuple[list[str], dict[str, list[int]]]:
    """(categories, series -> counts): classes grouped by split, or splits when the data has no classes."""
    classes = list((report.get("classes") or {}).keys())
    splits = report.get("splits") or {}
    if classes:
        if splits and all(isinstance(v, dict) for v in splits.values()):
            return classes, {name: [counts.get(c, 0) for c in classes] for name, counts in splits.items()}
        return classes, {"all": [report["classes"][c] for c in classes]}
    if splits:
        names = list(splits)
        return names, {"all": [v if isinstance(v, int) else sum(v.values()) for v in splits.values()]}
    return [], {}


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
