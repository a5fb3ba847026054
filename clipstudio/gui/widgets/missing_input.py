"""The banner a scoring screen shows while it still lacks a dataset or a model."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from clipstudio.gui.errors import show_error
from clipstudio.gui.screen_jobs import ScreenJobs
from clipstudio.gui.state import AppState

NO_DATASET = "Open a dataset on the Data screen first."
NO_MODEL = "No model is loaded yet."
_CALM = "#MissingInputBanner { background: #fff7e0; border: 1px solid #e0c060; border-radius: 4px; }"
_ALERT = "#MissingInputBanner { background: #ffe2a8; border: 2px solid #d08000; border-radius: 4px; }"
ATTENTION_MS = 1200


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
        self.setStyleSheet(_CALM)
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

    def draw_attention(self) -> bool:
        """For a button the user pressed: True when the screen can go ahead; otherwise the banner
        lights up for a moment, its text goes to the status bar and its button takes the focus, so
        the press visibly answers "this is what is missing"."""
        if self.refresh():
            return True
        self.setStyleSheet(_ALERT)
        QTimer.singleShot(ATTENTION_MS, self, lambda: self.setStyleSheet(_CALM))
        self._state.post_status(self.label.text().removesuffix(", or:").removesuffix(":"))
        if self.load_button.isVisible() and self.load_button.isEnabled():
            self.load_button.setFocus(Qt.FocusReason.OtherFocusReason)
        return False

    def load_builtin_model(self) -> None:
        if self._jobs.busy():
            return

        def job(_callback, _should_stop):
            from clipstudio.engine.models import load_model  # deferred: imports torch, off the GUI thread

            return load_model("builtin")

        self._jobs.start(
            job,
            name="load built-in model",
            succeeded=self._on_load_succeeded,
            failed=lambda message, details: show_error(self, message, details),
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
