"""Errors reach the user and the log: the dialog, sys/threading excepthooks, Qt's message handler."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import qCritical, qWarning

from clipstudio.engine.errors import ConfigError
from clipstudio.gui import errors
from clipstudio.gui.errors import describe_exception, install_exception_hooks, setup_logging, show_error


@pytest.fixture
def log_file():
    path = setup_logging()
    yield path
    for handler in logging.getLogger("clipstudio").handlers:
        handler.flush()


@pytest.fixture
def hooks(qapp):
    uninstall = install_exception_hooks()
    yield
    uninstall()


def _read(path) -> str:
    for handler in logging.getLogger("clipstudio").handlers:
        handler.flush()
    return path.read_text(encoding="utf-8")


def _raise(exc: BaseException):
    try:
        raise exc
    except BaseException as caught:  # noqa: B036 - we want the exception with its traceback
        return caught


def test_show_error_puts_the_traceback_under_details(message_boxes):
    show_error(None, "Training failed.", "Traceback (most recent call last):\n  ...")
    assert message_boxes.shown == [("exec", "Training failed.", "Traceback (most recent call last):\n  ...")]


def test_user_errors_are_described_without_a_traceback():
    message, details = describe_exception(_raise(ConfigError("The learning rate must be positive.")))
    assert (message, details) == ("The learning rate must be positive.", "")
    message, details = describe_exception(_raise(ZeroDivisionError("division by zero")))
    assert "division by zero" in message and "ZeroDivisionError" in details and "Traceback" in details


def test_uncaught_exception_shows_a_dialog_and_writes_the_log(hooks, log_file, message_boxes):
    exc = _raise(ZeroDivisionError("division by zero"))
    sys.excepthook(type(exc), exc, exc.__traceback__)
    [(_kind, text, details)] = message_boxes.shown
    assert "division by zero" in text
    assert "ZeroDivisionError" in details
    logged = _read(log_file)
    assert "Traceback" in logged and "ZeroDivisionError" in logged
    assert log_file.parent.name == "logs"


def test_uncaught_user_error_shows_its_sentence_only(hooks, log_file, message_boxes):
    exc = _raise(ConfigError("The batch size must be at least 1."))
    sys.excepthook(type(exc), exc, exc.__traceback__)
    assert message_boxes.shown == [("exec", "The batch size must be at least 1.", "")]
    logged = _read(log_file)
    assert "The batch size must be at least 1." in logged and "Traceback" not in logged


def test_exception_in_another_thread_is_shown_on_the_gui_thread(qtbot, hooks, log_file, message_boxes):
    shown_on = []
    original = errors.show_error

    def recording_show_error(*args, **kwargs):
        shown_on.append(threading.current_thread() is threading.main_thread())
        original(*args, **kwargs)

    errors.show_error = recording_show_error
    try:
        thread = threading.Thread(target=lambda: 1 / 0, name="background")
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: bool(message_boxes.shown), timeout=3000)
    finally:
        errors.show_error = original
    assert shown_on == [True]
    assert "ZeroDivisionError" in message_boxes.shown[0][2]
    assert "background" in _read(log_file)


def test_qt_warnings_go_to_the_log_only(hooks, log_file, message_boxes):
    qWarning("a harmless Qt warning")
    assert "a harmless Qt warning" in _read(log_file)
    assert message_boxes.shown == []


def test_qt_critical_messages_are_logged_and_shown(qtbot, hooks, log_file, message_boxes):
    qCritical("a Qt critical message")
    assert "a Qt critical message" in _read(log_file)
    assert message_boxes.shown == []  # not from inside Qt's call: once the event loop runs
    qtbot.waitUntil(lambda: len(message_boxes.shown) == 1, timeout=3000)
    assert message_boxes.shown[0][2] == "a Qt critical message"


def test_hooks_are_restored_on_uninstall(qapp):
    before = sys.excepthook, threading.excepthook
    uninstall = install_exception_hooks()
    assert sys.excepthook is not before[0]
    uninstall()
    assert (sys.excepthook, threading.excepthook) == before


def test_setting_up_logging_twice_keeps_one_file_handler(log_file):
    setup_logging()
    handlers = [h for h in logging.getLogger("clipstudio").handlers if getattr(h, "_clipstudio_file", False)]
    assert len(handlers) == 1


def test_every_error_shown_is_written_to_the_log(log_file, message_boxes):
    show_error(None, "The folder /data/x has no images.")
    show_error(None, "Something went wrong inside CLIP Studio: boom", "Traceback: boom at line 3")
    text = _read(log_file)
    assert "error shown to the user: The folder /data/x has no images." in text
    assert "Traceback: boom at line 3" in text
