"""Errors in the GUI: the log file, the error dialog, and the hooks that route every failure to both.

Like labelme: ``sys.excepthook``, ``threading.excepthook`` and Qt's message handler all end in the log
file and, for anything the user should know about, a dialog. User errors (``ClipStudioError``) show
their one sentence; bugs show a short line with the traceback under "Show Details...". Dialogs open
only on the GUI thread; other threads hand them over through a queued signal.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QtMsgType, QUrl, Signal, Slot, qInstallMessageHandler
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.storage.paths import user_data_dir

log = logging.getLogger("clipstudio.gui")
qt_log = logging.getLogger("clipstudio.qt")

LOG_NAME = "clipstudio.log"
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"


def log_dir() -> Path:
    """The folder holding ``clipstudio.log`` and its rotated predecessors."""
    return user_data_dir() / "logs"


def setup_logging(level: int = logging.INFO) -> Path:
    """Send the ``clipstudio`` loggers to a rotating file (1 MB x 5); returns the log file's path.

    Only paths and messages are logged, never caption text or image contents. Calling it again
    replaces the previous file handler (tests point ``CLIPSTUDIO_HOME`` elsewhere between calls).
    """
    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable app-data folder must not stop the app from starting
        folder = Path(tempfile.gettempdir()) / "clipstudio-logs"
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_NAME
    root = logging.getLogger("clipstudio")
    for handler in list(root.handlers):
        if getattr(handler, "_clipstudio_file", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler._clipstudio_file = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return path


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(one-sentence message, details) for an exception: no traceback for user errors."""
    if isinstance(exc, ClipStudioError):
        return str(exc), ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"Something went wrong inside CLIP Studio: {exc}", details


def show_error(parent: QWidget | None, message: str, details: str = "") -> None:
    """A modal error dialog: the message, and ``details`` (a traceback) under "Show Details...".

    Every error shown is also written to the log file, so a support request can start from it."""
    if details:
        log.error("error shown to the user: %s\n%s", message, details)
    else:
        log.warning("error shown to the user: %s", message)
    box = QMessageBox(parent)
    box.setWindowTitle("CLIP Studio")
    box.setText(message)
    if details:
        box.setIcon(QMessageBox.Icon.Critical)
        box.setInformativeText(f"This looks like a bug. The details are also in the log file in {log_dir()}.")
        box.setDetailedText(details)
    else:
        box.setIcon(QMessageBox.Icon.Warning)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


class ScreenErrorPage(QWidget):
    """Shown instead of a screen that failed to load: what happened, and the traceback."""

    def __init__(self, title: str, details: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.details = details
        heading = QLabel(f"The {title} screen could not be loaded.")
        heading.setObjectName("errorTitle")
        hint = QLabel("The other screens still work. The details below are also in the log file.")
        hint.setWordWrap(True)
        text = QPlainTextEdit(details, objectName="errorDetails")
        text.setReadOnly(True)
        text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        open_logs = QPushButton("Open log folder")
        open_logs.clicked.connect(open_log_folder)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 24)
        layout.addWidget(heading)
        layout.addWidget(hint)
        layout.addWidget(text, 1)
        layout.addWidget(open_logs, 0, Qt.AlignmentFlag.AlignLeft)

    def busy(self) -> bool:
        return False

    def shutdown(self) -> None:
        pass


def open_log_folder() -> None:
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class _DialogRelay(QObject):
    """Lives on the GUI thread; a queued signal brings errors from other threads to it."""

    error_raised = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self._showing = False
        self.error_raised.connect(self._on_self_error_raised, Qt.ConnectionType.QueuedConnection)

    @Slot(str, str)
    def _on_self_error_raised(self, message: str, details: str) -> None:
        if self._showing:  # an error while a dialog is open (e.g. in a paint event): log only, no pile-up
            return
        self._showing = True
        try:
            show_error(QApplication.activeWindow(), message, details)
        finally:
            self._showing = False


_relay: _DialogRelay | None = None


def report_error(message: str, details: str = "", *, later: bool = False) -> None:
    """Show an error dialog from any thread: at once on the GUI thread (unless ``later``), else queued."""
    app = QApplication.instance()
    if app is None or _relay is None:
        return
    if not later and QThread.currentThread() is app.thread():
        _relay._on_self_error_raised(message, details)
    else:
        _relay.error_raised.emit(message, details)


def _log_exception(exc: BaseException) -> tuple[str, str]:
    message, details = describe_exception(exc)
    if details:
        log.error("unhandled exception:\n%s", details)
    else:
        log.info("user error: %s", message)
    return message, details


def _excepthook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    message, details = _log_exception(exc)
    report_error(message, details)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    message, details = _log_exception(args.exc_value or args.exc_type())
    report_error(message, details)


_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message_handler(mode: QtMsgType, context, message: str) -> None:
    level = _QT_LEVELS.get(mode, logging.WARNING)
    where = f" ({context.file}:{context.line})" if context is not None and context.file else ""
    qt_log.log(level, "%s%s", message, where)
    if level >= logging.ERROR:
        for handler in logging.getLogger("clipstudio").handlers:
            handler.flush()
        # A fatal message aborts once this returns, so that dialog can't wait; a critical one may come
        # from inside painting or layout, so its dialog waits for the event loop.
        report_error("Qt reported an error; CLIP Studio may not work correctly until restarted.", message,
                     later=mode != QtMsgType.QtFatalMsg)


def install_exception_hooks() -> Callable[[], None]:
    """Route uncaught exceptions and Qt messages into the log and a dialog; returns an undo function.

    Call on the GUI thread once the QApplication exists.
    """
    global _relay
    if _relay is None:
        _relay = _DialogRelay()
    previous = (sys.excepthook, threading.excepthook)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    previous_qt = qInstallMessageHandler(_qt_message_handler)

    def uninstall() -> None:
        sys.excepthook, threading.excepthook = previous
        qInstallMessageHandler(previous_qt)

    return uninstall
