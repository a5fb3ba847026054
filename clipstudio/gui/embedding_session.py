"""What the scoring screens (Prompts, Results, Retrieval) share: image embeddings kept in memory,
the split they evaluate on, their background jobs, and the banner shown when a model or a dataset
is missing.

Encoding images is the slow part of every evaluation (tens of seconds for a few hundred images on a
CPU); encoding a handful of prompt texts is instant. ``EmbeddingSession`` encodes an image list once
per model (through the on-disk ``EmbeddingCache``) and then hands back the same arrays, so re-scoring
after a prompt edit or a second search only encodes texts.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from clipstudio.engine.data import Dataset
from clipstudio.engine.embeddings import EmbeddingCache, EncodedImages
from clipstudio.engine.events import Callback, ShouldStop, never_stop, no_callback
from clipstudio.gui.state import AppState
from clipstudio.gui.workers import Job, TaskWorker

log = logging.getLogger(__name__)

NO_DATASET = "Open a dataset on the Data screen first."
NO_MODEL = "No model is loaded yet."


class EmbeddingSession:
    """Image embeddings per (model fingerprint, image list), held in memory; thread-safe.

    ``image_embeddings`` is called inside worker jobs: the first call for a key encodes (reusing the
    on-disk cache), later calls return the stored result at once. A few keys are kept (least
    recently used dropped first) so switching between models or splits stays cheap.
    """

    def __init__(self, cache: EmbeddingCache | None = None, max_entries: int = 4) -> None:
        self._disk_cache = cache
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple, EncodedImages] = OrderedDict()
        self._captions: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def disk_cache(self) -> EmbeddingCache:
        if self._disk_cache is None:
            self._disk_cache = EmbeddingCache()  # created late: the cache folder comes from the env
        return self._disk_cache

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._captions.clear()

    def image_embeddings(
        self,
        model: Any,
        paths: list,
        *,
        callback: Callback = no_callback,
        should_stop: ShouldStop = never_stop,
    ) -> EncodedImages:
        """The images' embeddings (rows in ``indices`` order, like ``encode_image_files``)."""
        from clipstudio.engine import embeddings

        key = (model.fingerprint(), tuple(str(p) for p in paths))
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        encoded = embeddings.encode_image_files(
            model, list(paths), cache=self.disk_cache, callback=callback, should_stop=should_stop
        )
        if not encoded.cancelled:  # a partial result must not pass for the whole list next time
            with self._lock:
                self._entries[key] = encoded
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return encoded

    def text_embeddings(self, model: Any, texts: list[str]) -> np.ndarray:
        """L2-normalised (N, D) embeddings of many texts (e.g. every caption), kept like the images."""
        from clipstudio.engine.embeddings import encode_texts, l2_normalise

        key = (model.fingerprint(), tuple(texts))
        with self._lock:
            found = self._captions.get(key)
            if found is not None:
                return found
        emb = l2_normalise(encode_texts(model, texts))
        with self._lock:
            self._captions[key] = emb
            while len(self._captions) > self._max_entries:
                self._captions.popitem(last=False)
        return emb


_sessions: weakref.WeakKeyDictionary[AppState, EmbeddingSession] = weakref.WeakKeyDictionary()


def session_for(state: AppState) -> EmbeddingSession:
    """The one session of an app (every screen shares it); emptied when another dataset is opened."""
    session = _sessions.get(state)
    if session is None:
        session = _sessions[state] = EmbeddingSession()
        state.dataset_changed.connect(lambda _dataset: session.clear())
    return session


def evaluation_split(dataset: Dataset) -> tuple[Dataset, str]:
    """The labelled images to score, and a label saying which: val, else test, else all images."""
    names = dataset.split_names()
    for name in ("val", "test"):
        if name in names:
            part = dataset.split(name)
            label = f"'{name}' split"
            break
    else:
        part, label = dataset, "whole dataset (it has no val or test split)"
    labelled = [i for i, s in enumerate(part.samples) if s.label is not None]
    if len(labelled) < len(part):
        part = part.subset(labelled)
    return part, f"{label}, {len(part)} images"


def describe_failure(parent: QWidget, message: str, details: str) -> None:
    """Show a job's failure with the shell's error dialog (a plain message box before it exists)."""
    try:
        from clipstudio.gui.errors import show_error
    except ImportError:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.warning(parent, "CLIP Studio", message)
        return
    show_error(parent, message, details)


class ScreenJobs(QObject):
    """The background jobs of one screen: start, count and stop them (one TaskWorker per job)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workers: list[TaskWorker] = []
        self._status_label: QLabel | None = None
        self._progress_suffix = ""

    def show_status_on(self, label: QLabel, *, progress_suffix: str = "") -> None:
        """Jobs started without their own ``failed`` / ``progressed`` slots report on ``label``:
        progress as text, a failure in red plus the error dialog."""
        self._status_label = label
        self._progress_suffix = progress_suffix

    def _on_job_progressed(self, event: object) -> None:
        text = progress_text(event)
        if text and self._status_label is not None:
            self._status_label.setText(f"{text}{self._progress_suffix}")

    def _on_job_failed(self, message: str, details: str) -> None:
        if self._status_label is not None:
            self._status_label.setText(f"<span style='color:#c62828'>{message}</span>")
        parent = self.parent()
        describe_failure(parent if isinstance(parent, QWidget) else None, message, details)

    def start(
        self,
        job: Job,
        *,
        name: str,
        succeeded: Callable[[Any], None],
        failed: Callable[[str, str], None] | None = None,
        progressed: Callable[[object], None] | None = None,
        finished: Callable[[], None] | None = None,
    ) -> TaskWorker:
        worker = TaskWorker(job, name=name)
        worker.succeeded.connect(succeeded)
        if failed is None and self._status_label is not None:
            failed = self._on_job_failed
        if failed is not None:
            worker.failed.connect(failed)
        if progressed is None and self._status_label is not None:
            progressed = self._on_job_progressed
        if progressed is not None:
            worker.event_emitted.connect(progressed)
        worker.finished.connect(lambda w=worker: self._on_worker_finished(w))
        if finished is not None:
            worker.finished.connect(finished)
        self._workers.append(worker)
        worker.start()
        return worker

    def _on_worker_finished(self, worker: TaskWorker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        worker.wait()  # `finished` can arrive a moment before the thread has fully ended
        worker.deleteLater()

    def busy(self, name: str | None = None) -> bool:
        return any(w.isRunning() and (name is None or w.name == name) for w in self._workers)

    def cancel(self, name: str | None = None) -> None:
        for worker in self._workers:
            if name is None or worker.name == name:
                worker.cancel()

    def shutdown(self) -> None:
        """Cancel every job and wait for its thread to end."""
        for worker in list(self._workers):
            worker.cancel()
        for worker in list(self._workers):
            worker.wait()


class MissingInputBanner(QFrame):
    """An inline note saying what a screen still needs; offers to load the built-in model.

    ``refresh()`` shows "open a dataset" or "load a model" as needed and hides itself once both
    are there; it returns whether the screen can go ahead.
    """

    def __init__(self, state: AppState, *, needs_model: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.needs_model = needs_model
        self._jobs = ScreenJobs(self)
        self.setObjectName("MissingInputBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#MissingInputBanner { background: #fff7e0; border: 1px solid #e0c060; border-radius: 4px; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.load_button = QPushButton("Load the built-in model")
        self.load_button.clicked.connect(self.load_builtin_model)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.load_button)
        state.dataset_changed.connect(self.refresh)
        state.model_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> bool:
        loading = self._jobs.busy()
        if self._state.dataset is None:
            text, show_button = NO_DATASET, False
        elif self.needs_model and self._state.model is None:
            text = "Loading the built-in model…" if loading else f"{NO_MODEL} Load one on the Model screen, or:"
            show_button = True
        else:
            self.hide()
            return True
        self.label.setText(text)
        self.load_button.setVisible(show_button)
        self.load_button.setEnabled(not loading)
        self.show()
        return False

    def load_builtin_model(self) -> None:
        if self._jobs.busy():
            return

        def job(_callback, _should_stop):
            from clipstudio.engine.models import load_model

            return load_model("builtin")

        self._jobs.start(
            job,
            name="load built-in model",
            succeeded=self._on_load_succeeded,
            failed=lambda message, details: describe_failure(self, message, details),
            finished=self.refresh,
        )
        self._state.post_status("Loading the built-in model…")
        self.refresh()

    def _on_load_succeeded(self, model: Any) -> None:
        self._state.set_model(model, "builtin")
        self._state.post_status("Built-in model loaded.")

    def busy(self) -> bool:
        return self._jobs.busy()

    def shutdown(self) -> None:
        self._jobs.shutdown()


def progress_text(event: object) -> str | None:
    """'encode images 120/300' for a ProgressUpdated event, else None."""
    stage, done, total = (getattr(event, k, None) for k in ("stage", "done", "total"))
    if stage is None or done is None or total is None:
        return None
    return f"{stage[:1].upper()}{stage[1:]}: {done}/{total}"
