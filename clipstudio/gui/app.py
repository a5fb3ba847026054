"""Start the desktop app: log file, error hooks, QApplication, style, and the main window.

The window paints before torch or transformers are imported (screens import them inside their
workers), so a double-click shows CLIP Studio within about a second even on a cold start.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from clipstudio import __version__
from clipstudio.gui.errors import install_exception_hooks, setup_logging
from clipstudio.gui.gc_policy import GuiThreadGarbageCollector
from clipstudio.gui.main_window import MainWindow
from clipstudio.gui.settings import APPLICATION, ORGANIZATION
from clipstudio.gui.state import AppState
from clipstudio.gui.style import apply_style, icon

log = logging.getLogger(__name__)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clipstudio", description="Open the CLIP Studio window.")
    parser.add_argument("dataset", nargs="?", help="a dataset folder or annotation file to open at start")
    # Qt's own options (e.g. -platform offscreen) pass through to QApplication.
    args, qt_args = parser.parse_known_args(list(argv))
    args.qt_args = qt_args
    return args


def _windows_taskbar_identity() -> None:
    """Group the window under CLIP Studio's icon in the Windows taskbar, not python.exe's."""
    if sys.platform != "win32":
        return
    try:
        import ctypes

        ctypes.windll.shell32.SetCurrentProcessExplicitAppUserModelID("ClipStudio.ClipStudio")
    except (AttributeError, OSError):
        pass


def create_application(qt_args: Sequence[str] = ()) -> QApplication:
    """The QApplication with CLIP Studio's names, style and icon (reuses a running one)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv and sys.argv[0] else "clipstudio", *qt_args])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("clipstudio")
    apply_style(app)
    app.setWindowIcon(icon("app"))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Open the window (and, if given, a dataset); returns the exit code when it closes."""
    started = time.perf_counter()
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    log_path = setup_logging()
    log.info("CLIP Studio %s starting (Python %s, %s); log %s",
             __version__, platform.python_version(), platform.platform(), log_path)
    _windows_taskbar_identity()
    app = create_application(args.qt_args)
    uninstall_hooks = install_exception_hooks()
    garbage_collector = GuiThreadGarbageCollector(app)  # never collect Qt objects in a worker thread
    window = MainWindow(AppState())
    window.show()
    log.info("window shown after %.2f s", time.perf_counter() - started)
    if args.dataset:
        QTimer.singleShot(0, lambda: window.open_dataset(args.dataset))
    try:
        code = app.exec()
    finally:
        window.shutdown()  # closeEvent already did this, unless the app was quit another way
        garbage_collector.stop()
        uninstall_hooks()
    log.info("CLIP Studio closed (exit code %d)", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
