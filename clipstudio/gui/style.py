"""The look: Fusion with a calm light palette, one accent colour, a small style sheet, and the icons.

Clinicians read this app for hours: neutral greys, dark text with good contrast, 10 pt type, and the
accent kept for what is selected or primary. Style sheets only where the palette can't reach.
"""

from __future__ import annotations

import logging
from functools import cache

from PySide6.QtGui import QColor, QFont, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from clipstudio.engine.storage.paths import resources_dir

log = logging.getLogger(__name__)

ACCENT = "#2a6fb0"
ACCENT_LIGHT = "#e3eefa"
TEXT = "#1f2328"
MUTED_TEXT = "#5f6670"
WINDOW = "#f4f5f7"
BASE = "#ffffff"
BORDER = "#d0d4d9"
ERROR = "#b42318"
SUCCESS = "#1a7f37"

# Colours for curves and bars, distinguishable for common colour-vision deficiencies (Okabe-Ito).
PLOT_COLOURS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000"]

FONT_POINT_SIZE = 10


def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg``; an empty icon (and a log line) when there is none."""
    path = _icon_path(name)
    return QIcon(path) if path else QIcon()


@cache
def _icon_path(name: str) -> str:
    path = resources_dir() / "icons" / f"{name}.svg"
    if not path.is_file():
        log.warning("no icon named %r in %s", name, path.parent)
        return ""
    return str(path)


def style_sheet() -> str:
    path = resources_dir() / "styles" / "clipstudio.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        log.warning("style sheet %s is missing; using the plain palette", path)
        return ""


def light_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE,
        QPalette.ColorRole.AlternateBase: "#f7f8fa",
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#fbfbfc",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#ffffff",
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: "#8a9099",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.Light: "#ffffff",
        QPalette.ColorRole.Midlight: "#e6e8eb",
        QPalette.ColorRole.Mid: "#b8bdc4",
        QPalette.ColorRole.Dark: "#9aa0a8",
        QPalette.ColorRole.Shadow: "#6b7280",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(disabled, role, QColor("#9aa0a8"))
    return palette


def configure_plots() -> None:
    """pyqtgraph on the same light background, antialiased lines."""
    import pyqtgraph as pg

    pg.setConfigOptions(background=BASE, foreground=MUTED_TEXT, antialias=True)


def apply_style(app: QApplication) -> None:
    """Fusion + the light palette + the style sheet, the same on Windows, macOS and Linux."""
    app.setStyle("Fusion")
    app.setPalette(light_palette())
    font = QFont(app.font())
    font.setPointSize(FONT_POINT_SIZE)
    app.setFont(font)
    app.setStyleSheet(style_sheet())
    configure_plots()
