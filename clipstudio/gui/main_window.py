"""The main window: navigation on the left, one screen at a time on the right, menus and a status bar.

Screens come from ``clipstudio.gui.screens.SCREENS`` and are built once, at start. A screen that fails
to import or construct is replaced by an error page (and its traceback logged), so one broken screen
never takes the app down. Nothing here imports torch: the device shown in the status bar is found by
a worker after the window has painted.
"""

from __future__ import annotations

import html
import importlib
import logging
import os
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QStackedWidget,
    QWidget,
)

from clipstudio import __version__
from clipstudio.engine.runs.layout import CONFIG_FILE, RUN_FILE, is_run_folder, runs_root
from clipstudio.engine.runtime.device import device_in_words, select_device
from clipstudio.engine.storage.paths import resources_dir
from clipstudio.gui.errors import ScreenErrorPage, log_dir, open_log_folder, show_error
from clipstudio.gui.gc_policy import freeze_startup_objects
from clipstudio.gui.help import GettingStartedDialog, ShortcutsDialog
from clipstudio.gui.process_run import local_gpu_count
from clipstudio.gui.screens import SCREENS
from clipstudio.gui.settings import AppSettings, short_name
from clipstudio.gui.state import AppState
from clipstudio.gui.style import icon
from clipstudio.gui.workers import TaskWorker

log = logging.getLogger(__name__)

APP_TITLE = "CLIP Studio"
ANNOTATION_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv")
DEVICE_DETECT_DELAY_MS = 1500  # after the first paint, so importing torch never delays the window
# Quitting while busy: the window keeps painting while the work stops (a training saves its checkpoint
# first, seconds on a CPU); after this long it quits anyway.
QUIT_WAIT_S = 15.0
QUIT_POLL_MS = 50
STATUS_MESSAGE_MS = 10_000  # a status-bar message shows this long


def detect_device(callback, should_stop) -> str:
    """The device training will use by default, in words ("CPU", or the GPU's name).

    Run as the app's first TaskWorker, 1.5 s after the first paint, it is also the start-up warm-up:
    every TaskWorker imports the engine's heavy libraries before its job (``engine.warm_up``), and
    those imports hold the GIL in long stretches, so better now than inside the user's first job.
    """
    return device_in_words(select_device())


def droppable_path(paths: list[str]) -> str | None:
    """The first dropped path the app can open: a folder or an annotation file."""
    for path in paths:
        if os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(ANNOTATION_SUFFIXES)):
            return path
    return None


class MainWindow(QMainWindow):
    """Left navigation + stacked screens. ``screens`` maps key -> screen for those that loaded."""

    def __init__(self, state: AppState | None = None, parent: QWidget | None = None, *,
                 detect_device: bool = True) -> None:
        super().__init__(parent)
        self.state = state if state is not None else AppState(self)
        self.settings = AppSettings()
        self.screens: dict[str, QWidget] = {}
        self.screen_errors: dict[str, str] = {}  # key -> traceback, for screens shown as error pages
        self._keys: list[str] = []
        self._shut_down = False
        self._stopping: QProgressDialog | None = None  # shown from "Stop it and quit?" until the work has ended
        self._quit_deadline = 0.0
        self._quit_timer = QTimer(self, interval=QUIT_POLL_MS)
        self._quit_timer.timeout.connect(self._on_quit_timer_timeout)
        self._device_worker: TaskWorker | None = None
        self._device_timer: QTimer | None = None
        if detect_device:
            self._device_timer = QTimer(self, singleShot=True, interval=DEVICE_DETECT_DELAY_MS)
            self._device_timer.timeout.connect(self._start_device_detection)

        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.setMinimumSize(900, 600)

        self.nav = QListWidget(objectName="navigation")
        self.nav.setIconSize(QSize(22, 22))
        self.nav.setFixedWidth(190)
        self.nav.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stack = QStackedWidget()
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._view_actions = QActionGroup(self)
        self._build_screens()
        self._build_menus()
        self.nav.currentRowChanged.connect(self._on_nav_current_row_changed)

        self.device_label = QLabel("Device: detecting…" if detect_device else "")
        self.device_label.setToolTip("Where models run: training and encoding use this device by default.")
        self.statusBar().addPermanentWidget(self.device_label)
        self.state.status_posted.connect(self._on_state_status_posted)
        self.state.dataset_changed.connect(self._on_state_dataset_changed)
        self.state.run_changed.connect(self._on_state_run_changed)
        self.state.screen_requested.connect(self._on_state_screen_requested)

        if not self.settings.restore_window(self):
            self._default_geometry()
        self.nav.setCurrentRow(0)

    # -- screens ------------------------------------------------------------------------------------
    def _build_screens(self) -> None:
        for index, (key, spec) in enumerate(SCREENS):
            widget, title, icon_name = self._load_screen(key, spec)
            self._keys.append(key)
            self.stack.addWidget(widget)
            item = QListWidgetItem(icon(icon_name), title)
            item.setSizeHint(QSize(170, 42))
            item.setToolTip(f"{title} (Ctrl+{index + 1})")
            self.nav.addItem(item)
            action = QAction(icon(icon_name), title, self, checkable=True)
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _checked=False, k=key: self.show_screen(k))
            self._view_actions.addAction(action)

    def _load_screen(self, key: str, spec: str) -> tuple[QWidget, str, str]:
        fallback_title = key.capitalize()
        try:
            module_name, class_name = spec.split(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            title = str(getattr(cls, "title", fallback_title))
            icon_name = str(getattr(cls, "icon_name", key))
            widget = cls(self.state, self)
        except Exception:
            details = traceback.format_exc()
            log.error("the %s screen (%s) could not be loaded:\n%s", key, spec, details)
            self.screen_errors[key] = details
            return ScreenErrorPage(fallback_title, details), fallback_title, key
        self.screens[key] = widget
        return widget, title, icon_name

    def screen_for(self, key: str) -> QWidget | None:
        """The screen widget for ``key`` (None if it failed to load)."""
        return self.screens.get(key)

    def page(self, key: str) -> QWidget:
        """What the stack shows for ``key``: the screen, or its error page."""
        return self.stack.widget(self._keys.index(key))

    def current_screen_key(self) -> str:
        index = self.stack.currentIndex()
        return self._keys[index] if 0 <= index < len(self._keys) else ""

    def show_screen(self, key: str) -> None:
        self.nav.setCurrentRow(self._keys.index(key))

    def _on_nav_current_row_changed(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self._view_actions.actions()[row].setChecked(True)
        # A message belongs to the screen it was posted on ("Press View results on the Train screen"):
        # the new screen says what it shows, if it can, or the status bar clears.
        describe = getattr(self.stack.widget(row), "status_text", None)
        text = describe() if callable(describe) else ""
        if text:
            self.statusBar().showMessage(text, STATUS_MESSAGE_MS)
        else:
            self.statusBar().clearMessage()

    # -- menus --------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(icon("open-folder"), "Open &dataset folder…", QKeySequence("Ctrl+O"),
                            self._on_open_folder_triggered)
        file_menu.addAction(icon("open-file"), "Open &annotation file…", QKeySequence("Ctrl+Shift+O"),
                            self._on_open_file_triggered)
        self.recent_datasets_menu = file_menu.addMenu("Recent d&atasets")
        self.recent_datasets_menu.aboutToShow.connect(self._on_recent_datasets_about_to_show)
        file_menu.addSeparator()
        file_menu.addAction(icon("results"), "Open &run…", self._on_open_run_triggered)
        self.recent_runs_menu = file_menu.addMenu("Recent r&uns")
        self.recent_runs_menu.aboutToShow.connect(self._on_recent_runs_about_to_show)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", QKeySequence("Ctrl+Q"), self.close)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addActions(self._view_actions.actions())

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&Getting started", QKeySequence.StandardKey.HelpContents, self.show_getting_started)
        help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        help_menu.addSeparator()
        help_menu.addAction("&About CLIP Studio", self.show_about).setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction("Open &log folder", open_log_folder)

    def _fill_recent_menu(self, menu: QMenu, paths: list[str], open_fn) -> None:
        menu.clear()
        for path in paths:
            action = menu.addAction(short_name(path))
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: open_fn(p))
        if not paths:
            menu.addAction("(none yet)").setEnabled(False)

    def _on_recent_datasets_about_to_show(self) -> None:
        self._fill_recent_menu(self.recent_datasets_menu, self.settings.recent_datasets(), self.open_dataset)

    def _on_recent_runs_about_to_show(self) -> None:
        self._fill_recent_menu(self.recent_runs_menu, self.settings.recent_runs(), self.open_run)

    def _start_folder(self) -> str:
        recent = self.settings.recent_datasets()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def _on_open_folder_triggered(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", self._start_folder())
        if path:
            self.open_dataset(path)

    def _on_open_file_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open annotation file", self._start_folder(),
            "Annotation files (*.json *.jsonl *.ndjson *.csv *.tsv);;All files (*)")
        if path:
            self.open_dataset(path)

    def _on_open_run_triggered(self) -> None:
        runs = runs_root()
        recent = self.settings.recent_runs()
        start = str(Path(recent[0]).parent) if recent else str(runs if runs.is_dir() else Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open training run folder", start)
        if path:
            self.open_run(path)

    def show_getting_started(self) -> GettingStartedDialog:
        dialog = GettingStartedDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        samples = resources_dir() / "samples" / "ATTRIBUTION.md"
        model_readme = resources_dir() / "models" / "builtin" / "README.md"

        def link(path: Path, text: str) -> str:
            return f'<a href="{QUrl.fromLocalFile(str(path)).toString()}">{html.escape(text)}</a>'

        QMessageBox.about(self, "About CLIP Studio", f"""
            <h3>CLIP Studio {html.escape(__version__)}</h3>
            <p>Adapt CLIP-style image-text models to your own medical images.<br>
            Licence: Apache-2.0. <b>A research tool, not for clinical diagnosis.</b></p>
            <p><b>Built-in model</b> ({link(model_readme, 'details')}): EfficientNet-Lite0 image tower with
            ImageNet weights (Apache-2.0) and the all-MiniLM-L6-v2 text tower (Apache-2.0), aligned
            offline.</p>
            <p><b>Bundled sample</b> ({link(samples, 'attribution')}): 48 paediatric chest X-rays from
            PneumoniaMNIST (MedMNIST v2, Yang et al. 2023; Kermany et al. 2018), licence CC BY 4.0.</p>
            <p>Log files: {html.escape(str(log_dir()))}</p>""")

    # -- opening things -----------------------------------------------------------------------------
    def open_dataset(self, path: str) -> bool:
        """Open a dataset folder or annotation file in the Data screen; False if it can't be tried."""
        data = self.screens.get("data")
        if data is None or not hasattr(data, "open_dataset"):
            show_error(self, "The Data screen is not available, so the dataset can't be opened.",
                       self.screen_errors.get("data", ""))
            return False
        if not os.path.exists(path):
            show_error(self, f"{path} does not exist (it may have been moved or deleted).")
            return False
        self.settings.add_recent_dataset(path)
        self.show_screen("data")
        log.info("opening dataset %s", path)
        data.open_dataset(path)
        return True

    def open_run(self, path: str) -> bool:
        """Make ``path`` the current run and show it in Results; False if it isn't a run folder."""
        if not is_run_folder(path):
            show_error(self, f"{path} is not a training run folder (it has no {RUN_FILE} and {CONFIG_FILE}).")
            return False
        log.info("opening run %s", path)
        self.state.set_run(path)  # -> _on_state_run_changed records it
        self.show_screen("results")
        return True

    def _on_state_dataset_changed(self, dataset) -> None:
        name = short_name(self.state.dataset_path) if dataset is not None and self.state.dataset_path else ""
        # The app name last: where the platform appends it to every title, it then isn't repeated.
        self.setWindowTitle(f"{name} — {APP_TITLE}" if name else APP_TITLE)
        if name:
            self.settings.add_recent_dataset(self.state.dataset_path)

    def _on_state_run_changed(self, run_dir: str) -> None:
        # A run that just finished training stays on the Train screen (its final curves): the user goes
        # to Results with its "View results" button.
        if run_dir and os.path.isdir(run_dir):
            self.settings.add_recent_run(run_dir)

    def _on_state_screen_requested(self, key: str) -> None:
        if key in self._keys:
            self.show_screen(key)

    def _on_state_status_posted(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MESSAGE_MS)

    # -- drag and drop --------------------------------------------------------------------------------
    @staticmethod
    def _dropped(event) -> str | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        return droppable_path([url.toLocalFile() for url in mime.urls() if url.isLocalFile()])

    def dragEnterEvent(self, event) -> None:
        if self._dropped(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        path = self._dropped(event)
        if not path:
            event.ignore()
            return
        event.acceptProposedAction()
        if is_run_folder(path):
            self.open_run(path)
        else:
            self.open_dataset(path)

    # -- device ---------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._device_timer is not None and self._device_worker is None and not self._shut_down:
            self._device_timer.start()

    def _start_device_detection(self) -> None:
        if self._device_worker is not None or self._shut_down:
            return
        worker = TaskWorker(detect_device, name="device detection", parent=self)
        worker.succeeded.connect(self._on_device_worker_succeeded)
        worker.failed.connect(self._on_device_worker_failed)
        self._device_worker = worker
        worker.start()

    def _on_device_worker_succeeded(self, device: str) -> None:
        self.device_label.setText(f"Device: {device}")
        freeze_startup_objects()  # torch & co. are imported now: keep them out of every later GC pass
        train = self.screen_for("train")
        if train is not None:  # with several GPUs it offers to train on all of them
            train.set_gpu_count(local_gpu_count())

    def _on_device_worker_failed(self, message: str, details: str) -> None:
        self.device_label.setText("Device: unknown")
        self.device_label.setToolTip(message)

    # -- closing ------------------------------------------------------------------------------------
    def busy_screens(self) -> list[str]:
        """Keys of the screens whose work would be lost by closing now."""
        busy = []
        for key, screen in self.screens.items():
            try:
                if screen.busy():
                    busy.append(key)
            except Exception:
                log.exception("%s screen: busy() failed", key)
        return busy

    def shutdown(self) -> None:
        """Cancel and wait for every screen's workers and our own; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        for key, screen in self.screens.items():
            try:
                screen.shutdown()
            except Exception:
                log.exception("%s screen: shutdown() failed", key)
        if self._device_timer is not None:
            self._device_timer.stop()
        if self._device_worker is not None:
            self._device_worker.cancel()
            self._device_worker.wait()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shut_down:
            event.accept()
            return
        if self._stopping is not None:  # already stopping: it closes by itself
            event.ignore()
            return
        busy = self.busy_screens()
        if busy:
            question = ("Training is running. Stop it and quit?" if "train" in busy
                        else "A task is still running. Stop it and quit?")
            answer = QMessageBox.question(
                self, APP_TITLE, question,
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            event.ignore()
            if answer == QMessageBox.StandardButton.Yes:
                self.stop_then_quit(training="train" in busy)
            return
        self.shutdown()
        self.settings.save_window(self)
        event.accept()

    def stop_then_quit(self, *, training: bool = False) -> None:
        """Ask every job to stop, say "Stopping…" while they end (the window keeps painting), then close."""
        log.info("quitting: stopping the running work first")
        text = ("Stopping… The training saves its progress (Resume continues it later), then CLIP Studio closes."
                if training else "Stopping… CLIP Studio closes when the running task has stopped.")
        dialog = QProgressDialog(text, "", 0, 0, self)
        dialog.setWindowTitle(APP_TITLE)
        dialog.setCancelButton(None)  # there is nothing to take back: the work is already told to stop
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        self._stopping = dialog
        self.statusBar().showMessage("Stopping…")
        self.centralWidget().setEnabled(False)
        self.menuBar().setEnabled(False)
        TaskWorker.cancel_all()
        self._quit_deadline = time.monotonic() + QUIT_WAIT_S
        self._quit_timer.start()
        dialog.show()

    def _on_quit_timer_timeout(self) -> None:
        running = TaskWorker.running_workers()
        if running and time.monotonic() < self._quit_deadline:
            return
        self._quit_timer.stop()
        if running:
            self._quit_anyway([w.name for w in running])
            return
        self.shutdown()  # every worker has ended: nothing left to wait for
        self.settings.save_window(self)
        self._stopping.close()
        self.close()

    def _quit_anyway(self, names: list[str]) -> None:
        """The bounded wait is over and work still runs: leave without it (writes are atomic, so no file
        is left half written; a stopped training resumes from its last saved checkpoint)."""
        log.warning("quitting after %.0f s although still running: %s", QUIT_WAIT_S, ", ".join(names))
        self.settings.save_window(self)
        logging.shutdown()
        os._exit(0)  # a running QThread can't be destroyed, so Qt's normal exit would abort instead

    def _default_geometry(self) -> None:
        available = QWidget.screen(self).availableGeometry() if QWidget.screen(self) else None
        width, height = 1280, 820
        if available is not None:
            width, height = min(width, available.width() - 40), min(height, available.height() - 60)
        self.resize(max(width, 900), max(height, 600))
