"""The Data screen: open a dataset, see its health report, browse thumbnails, set up splits.

Reading the dataset and the health check run in one ``TaskWorker``: the dataset is shown (and put
in ``AppState``) as soon as it is read, the health report follows with a progress bar. The path at
the top is always the shown dataset's: a file or folder that can't be opened is named in an error
line below it, and the dataset already open stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.data import Dataset
from clipstudio.engine.data.health import HealthReport
from clipstudio.engine.errors import DataError
from clipstudio.engine.events import ProgressUpdated
from clipstudio.gui.errors import show_error
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.corrections_view import CorrectionsBar, CorrectionsDialog
from clipstudio.gui.widgets.health_view import HealthView
from clipstudio.gui.widgets.split_settings import SplitSettingsPanel, preview_splits
from clipstudio.gui.widgets.thumbnail_grid import ThumbnailGrid, ThumbnailItem
from clipstudio.gui.workers import TaskWorker

FORMAT_NAMES = {
    "class_folders": "Class folders",
    "clip_finetune": "Image–caption pairs (CLIP-Finetune JSON)",
    "json_list": "Image–caption pairs (JSON list)",
    "json_dict": "Image–caption pairs (JSON: image → caption)",
    "jsonl": "Image–caption pairs (JSON Lines)",
    "csv": "Image–caption table (CSV / TSV)",
}
ANNOTATION_FORMATS = {"clip_finetune", "json_list", "json_dict", "jsonl", "csv"}
ANNOTATION_FILTER = "Captions files (*.json *.jsonl *.ndjson *.csv *.tsv);;All files (*)"
_KEYS_FOUND = re.compile(r"\b(key|column)s found: ")
DROP_HINT = "Drop a class folder or a captions file (JSON, JSONL, CSV) here"


def describe_format(dataset: Dataset) -> str:
    """The dataset's format in words, with its splits, e.g. "Class folders (train/test splits)"."""
    name = FORMAT_NAMES.get(dataset.format, dataset.format)
    splits = dataset.split_names()
    if dataset.format == "class_folders":
        return f"{name} ({'/'.join(splits)} splits)" if splits else f"{name} (no split folders)"
    return f"{name}, splits: {'/'.join(splits)}" if splits else name


@dataclass(frozen=True)
class DatasetRead:
    """Emitted by the load job once the dataset is read, before the health check."""

    dataset: Dataset


@dataclass(frozen=True)
class KeysNeeded:
    """The load job's result when an annotation file's image/caption keys weren't recognised."""

    message: str
    format: str


def load_job(
    path: str,
    image_key: str | None,
    caption_key: str | None,
    count_tokens=None,
    max_tokens: int | None = None,
):
    """The worker job: read the dataset (emit ``DatasetRead``), then return its health report."""

    def job(callback, should_stop):
        # deferred: the data readers pull in numpy/PIL; the window paints before the first dataset opens
        from clipstudio.engine.data import detect_format, load_dataset
        from clipstudio.engine.data.health import health_report

        try:
            dataset = load_dataset(path, image_key=image_key, caption_key=caption_key)
        except DataError as exc:
            if _KEYS_FOUND.search(str(exc)):
                fmt = detect_format(path)
                if fmt in ANNOTATION_FORMATS:
                    return KeysNeeded(str(exc), fmt)
            raise
        callback(DatasetRead(dataset))
        if should_stop():
            return None
        return health_report(
            dataset,
            count_tokens=count_tokens,
            max_tokens=max_tokens,
            callback=callback,
            should_stop=should_stop,
        )

    return job


class DataScreen(QWidget):
    title = "Data"
    icon_name = "data"

    load_finished = Signal()  # an open_dataset() ended (read + checked, failed, cancelled or keys needed)
    preview_finished = Signal()  # a split preview ended

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setAcceptDrops(True)
        self._worker: TaskWorker | None = None
        self._preview_worker: TaskWorker | None = None
        self._retired: list[TaskWorker] = []  # superseded workers, kept alive until they finish
        self._path = ""  # the path being opened (or last tried); the shown dataset's is state.dataset_path
        self._read_pending = False  # the open in progress hasn't read its dataset yet

        self.open_folder_button = QPushButton("Open folder…")
        self.open_folder_button.clicked.connect(self._on_open_folder_button_clicked)
        self.open_file_button = QPushButton("Open file…")
        self.open_file_button.clicked.connect(self._on_open_file_button_clicked)
        self.path_label = QLabel()
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label = QLabel()
        self.error_label.setTextFormat(Qt.TextFormat.RichText)
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        self.format_label = QLabel()
        self.format_label.setTextFormat(Qt.TextFormat.RichText)
        self.format_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.open_folder_button)
        top.addWidget(self.open_file_button)
        top.addSpacing(12)
        top.addWidget(self.path_label, 1)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_label)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        self.progress_box.setLayout(progress_row)
        progress_row.setContentsMargins(0, 0, 0, 0)
        self.progress_box.hide()

        self.keys_box = self._build_keys_box()
        self.keys_box.hide()

        self.corrections_bar = CorrectionsBar()
        self.corrections_bar.review_requested.connect(self._on_corrections_bar_review_requested)
        self.corrections_dialog: CorrectionsDialog | None = None
        state.corrections_changed.connect(self._on_state_corrections_changed)
        self.health_view = HealthView()
        self.thumbnails = ThumbnailGrid(show_on_map=True)
        self.thumbnails.show_on_map.requested.connect(state.request_show_on_map)
        self.split_panel = SplitSettingsPanel(state.split_settings)
        self.split_panel.settings_changed.connect(self._on_split_panel_settings_changed)
        self.split_panel.apply_requested.connect(self._on_split_panel_apply_requested)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.thumbnails, "Images")
        self.tabs.addTab(self.split_panel, "Splits")

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 6, 0)
        left_layout.addWidget(self.format_label)
        left_layout.addWidget(self.corrections_bar)
        left_layout.addWidget(self.health_view, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([560, 640])  # the grid's large size hint would otherwise squeeze the report
        left.setMinimumWidth(380)

        self.drop_hint = QLabel(DROP_HINT)
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setWordWrap(True)
        self.drop_hint.setObjectName("dropZone")
        self.drop_hint.setStyleSheet(
            "QLabel#dropZone { border: 2px dashed palette(mid); border-radius: 10px; padding: 40px;"
            " font-size: 15px; color: palette(placeholder-text); }"
        )
        # First run: one click to a real dataset, so a new user sees every screen working at once.
        self.sample_button = QPushButton("Try the bundled sample (48 chest X-rays, CC BY 4.0)")
        self.sample_button.setToolTip("Open resources/samples/chest_xray: 24 normal and 24 pneumonia "
                                      "paediatric chest X-rays from PneumoniaMNIST.")
        self.sample_button.clicked.connect(self._on_sample_button_clicked)
        empty_page = QWidget()
        empty_layout = QVBoxLayout(empty_page)
        empty_layout.addWidget(self.drop_hint, 1)
        empty_layout.addWidget(self.sample_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.pages = QStackedWidget()
        self.pages.addWidget(empty_page)
        self.pages.addWidget(splitter)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.error_label)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.keys_box)
        layout.addWidget(self.pages, 1)

    def _build_keys_box(self) -> QFrame:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        self.keys_message = QLabel()
        self.keys_message.setWordWrap(True)
        self.keys_message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.image_key_edit = QLineEdit()
        self.image_key_edit.setPlaceholderText("e.g. file_name")
        self.caption_key_edit = QLineEdit()
        self.caption_key_edit.setPlaceholderText("e.g. text")
        self.retry_button = QPushButton("Read again")
        self.retry_button.clicked.connect(self._on_retry_button_clicked)
        for edit in (self.image_key_edit, self.caption_key_edit):
            edit.returnPressed.connect(self._on_retry_button_clicked)
        row = QHBoxLayout()
        row.addWidget(QLabel("Image column/key"))
        row.addWidget(self.image_key_edit)
        row.addWidget(QLabel("Caption column/key"))
        row.addWidget(self.caption_key_edit)
        row.addWidget(self.retry_button)
        layout = QVBoxLayout(box)
        layout.addWidget(self.keys_message)
        layout.addLayout(row)
        return box

    # --- the screen contract -------------------------------------------------------------------
    def busy(self) -> bool:
        return any(
            w is not None and w.isRunning() for w in (self._worker, self._preview_worker, *self._retired)
        )

    def shutdown(self) -> None:
        for worker in (self._worker, self._preview_worker, *self._retired):
            if worker is not None:
                worker.cancel()
        for worker in (self._worker, self._preview_worker, *self._retired):
            if worker is not None:
                worker.wait()
        self._retired.clear()
        self.thumbnails.shutdown()

    # --- public --------------------------------------------------------------------------------
    def open_dataset(
        self, path: str, *, image_key: str | None = None, caption_key: str | None = None
    ) -> None:
        """Read the dataset at ``path`` (folder or annotation file) and check its health, in the background."""
        path = str(path)
        if path != self._path:
            self.image_key_edit.clear()
            self.caption_key_edit.clear()
        self._path = path
        self._retire(self._worker)
        self.keys_box.hide()
        self.error_label.hide()
        self._read_pending = True
        model = self.state.model
        count_tokens = getattr(model, "count_tokens", None) if model is not None else None
        max_tokens = getattr(model, "max_text_tokens", None) if model is not None else None
        worker = TaskWorker(
            load_job(path, image_key, caption_key, count_tokens, max_tokens),
            name="open dataset",
            parent=self,
            needs_engine=False,  # reading and checking images needs numpy and PIL only (tested)
        )
        worker.event_emitted.connect(self._on_worker_event_emitted)
        worker.succeeded.connect(self._on_worker_succeeded)
        worker.failed.connect(self._on_worker_failed)
        worker.cancelled.connect(self._on_worker_cancelled)
        self._worker = worker
        self._show_progress(f"Reading {Path(path).name}…", 0, 0)
        self.state.post_status(f"Opening {path}…")
        worker.start()

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_dataset(paths[0])

    # --- worker slots --------------------------------------------------------------------------
    def _on_worker_event_emitted(self, event: object) -> None:
        if isinstance(event, DatasetRead):
            self._read_pending = False
            self._show_dataset(event.dataset)
        elif isinstance(event, ProgressUpdated):
            self._show_progress(f"Checking images {event.done:,} / {event.total:,}", event.done, event.total)

    def _on_worker_succeeded(self, result: object) -> None:
        self._hide_progress()
        if isinstance(result, KeysNeeded):
            self._ask_for_keys(result)
        elif result is not None:
            self._show_report(result)
        self.load_finished.emit()

    def _show_report(self, report: HealthReport) -> None:
        self.health_view.set_report(report.to_dict())
        self.state.set_health(report)
        n_warn = len(report.warnings)
        issues = f", {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ", no problems found"
        self.state.post_status(f"Checked {report.n_images:,} images{issues}.")

    def _on_worker_failed(self, message: str, details: str) -> None:
        self._hide_progress()
        if self._read_pending:  # the dataset itself could not be read (not its health check)
            self._show_open_error(message)
        self.state.post_status(f"Couldn't open {self._path}.")
        show_error(self, message, details)
        self.load_finished.emit()

    def _show_open_error(self, message: str) -> None:
        """Name the path that failed and why, and say what is still shown."""
        shown = self.state.dataset_path if self.state.dataset is not None else ""
        still = f" Still showing {_escape(shown)}." if shown else ""
        reason = message.removeprefix(f"{self._path}: ")  # the engine's messages start with the path
        self.error_label.setText(f"<span style='color:#c62828'><b>Couldn't open {_escape(self._path)}</b>: "
                                 f"{_escape(reason)}</span>{still}")
        self.error_label.show()

    def _on_worker_cancelled(self) -> None:
        self._hide_progress()
        if self._read_pending:
            self.state.post_status(f"Stopped opening {self._path}; the dataset shown is unchanged.")
        else:
            self.state.post_status("Health check cancelled; the dataset is open but was not fully checked.")
        self.load_finished.emit()

    # --- ui slots ------------------------------------------------------------------------------
    def _on_sample_button_clicked(self) -> None:
        from clipstudio.engine.storage.paths import samples_dir  # deferred: only when the button is clicked

        self.open_dataset(str(samples_dir() / "chest_xray"))

    def _on_open_folder_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset folder", self._start_dir())
        if folder:
            self.open_dataset(folder)

    def _on_open_file_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open captions file", self._start_dir(), ANNOTATION_FILTER
        )
        if path:
            self.open_dataset(path)

    def _on_cancel_button_clicked(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.progress_label.setText("Stopping…")

    def _on_retry_button_clicked(self) -> None:
        if self._path:
            self.open_dataset(
                self._path,
                image_key=self.image_key_edit.text().strip() or None,
                caption_key=self.caption_key_edit.text().strip() or None,
            )

    def _on_corrections_bar_review_requested(self) -> None:
        if self.state.dataset is None:
            return
        if self.corrections_dialog is not None:
            self.corrections_dialog.close()
        dialog = CorrectionsDialog(self.state.dataset_path, self.state.dataset, self)
        dialog.corrections_changed.connect(self.state.notify_corrections_changed)
        self.corrections_dialog = dialog
        dialog.show()

    def _on_state_corrections_changed(self) -> None:
        """Read the open dataset again, so every screen (and training) sees the corrections."""
        if self.state.dataset is not None and self.state.dataset_path:
            self.open_dataset(
                self.state.dataset_path,
                image_key=self.image_key_edit.text().strip() or None,
                caption_key=self.caption_key_edit.text().strip() or None,
            )

    def _on_split_panel_settings_changed(self, settings: dict[str, Any]) -> None:
        self.state.split_settings = dict(settings)

    def _on_split_panel_apply_requested(self, settings: dict[str, Any]) -> None:
        dataset = self.state.dataset
        if dataset is None:
            return
        self.state.split_settings = dict(settings)
        self._retire(self._preview_worker)
        worker = TaskWorker(
            lambda _cb, _stop: preview_splits(dataset, settings), name="split preview", parent=self
        )
        worker.succeeded.connect(self._on_preview_worker_succeeded)
        worker.failed.connect(self._on_preview_worker_failed)
        self._preview_worker = worker
        self.split_panel.show_busy(True)
        worker.start()

    def _on_preview_worker_succeeded(self, preview: dict) -> None:
        self.split_panel.show_busy(False)
        self.split_panel.show_result(preview)
        self.preview_finished.emit()

    def _on_preview_worker_failed(self, message: str, details: str) -> None:
        self.split_panel.show_busy(False)
        self.split_panel.result.setText("")
        show_error(self, message, details)
        self.preview_finished.emit()

    # --- helpers -------------------------------------------------------------------------------
    def _show_dataset(self, dataset: Dataset) -> None:
        names = dataset.class_names
        classes = f"{len(names)} classes" if names else "no class labels"
        captions = ", with captions" if dataset.has_captions else ""
        self.format_label.setText(
            f"<b>{describe_format(dataset)}</b> — {len(dataset):,} images, {classes}{captions}"
        )
        self.corrections_bar.set_dataset(dataset)
        if self.corrections_dialog is not None:
            self.corrections_dialog.set_dataset(dataset)
        self.health_view.set_report(None)
        self.health_view.summary.setText("Checking images…")
        self.thumbnails.set_items(
            [
                ThumbnailItem(
                    str(s.path),
                    names[s.label] if s.label is not None and s.label < len(names) else "",
                    s.split or "",
                    s.captions[0] if s.captions else "",
                )
                for s in dataset.samples
            ],
            class_names=list(names),
            split_names=dataset.split_names(),
        )
        self.split_panel.set_dataset(dataset)
        self.path_label.setText(self._path)
        self.path_label.setToolTip(self._path)
        self.pages.setCurrentIndex(1)
        self.state.set_dataset(dataset, self._path)
        self.state.post_status(
            f"Opened {len(dataset):,} images ({describe_format(dataset)}); checking health…"
        )

    def _ask_for_keys(self, needed: KeysNeeded) -> None:
        self.keys_message.setText(
            f"<b>{_escape(Path(self._path).name)}</b> ({FORMAT_NAMES.get(needed.format, needed.format)}): "
            "the image or caption column wasn't "
            f"recognised. {_escape(needed.message)}<br>Type the names below and read the file again."
        )
        self.keys_box.show()
        self.image_key_edit.setFocus()
        self.state.post_status("Which columns hold the images and captions?")

    def _show_progress(self, text: str, done: int, total: int) -> None:
        self.progress_label.setText(text)
        self.progress.setRange(0, total)  # 0..0: busy indicator
        self.progress.setValue(done)
        self.cancel_button.setEnabled(True)
        self.progress_box.show()

    def _hide_progress(self) -> None:
        self.progress_box.hide()

    def _retire(self, worker: TaskWorker | None) -> None:
        """Stop listening to a superseded worker; keep it alive until its thread ends."""
        if worker is None or not worker.isRunning():
            return
        for signal in (worker.event_emitted, worker.succeeded, worker.failed, worker.cancelled):
            try:
                signal.disconnect()
            except (RuntimeError, TypeError):
                pass
        worker.cancel()
        self._retired.append(worker)
        worker.finished.connect(lambda w=worker: self._retired.remove(w) if w in self._retired else None)

    def _start_dir(self) -> str:
        if self._path:
            p = Path(self._path)
            return str(p if p.is_dir() else p.parent)
        return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
