"""What the screens share: the open dataset, the chosen model, prompts, the latest run and results.

Screens read ``AppState`` and listen to its signals; they never reach into each other. Heavy objects
(datasets, models) are created by workers and handed over with the ``set_*`` methods on the GUI thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import DataConfig
from clipstudio.engine.data import Dataset
from clipstudio.engine.data.health import HealthReport
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.prompts import PromptSet


class AppState(QObject):
    dataset_changed = Signal(object)  # Dataset | None
    health_changed = Signal(object)  # HealthReport | None
    model_changed = Signal(object)  # ImageTextModel | None
    prompts_changed = Signal(object)  # PromptSet
    run_changed = Signal(str)  # run folder of the latest / opened training run ("" = none)
    status_posted = Signal(str)  # a short line for the status bar
    screen_requested = Signal(str)  # a screen key ("results") the user asked to go to from another screen
    corrections_changed = Signal()  # the open dataset's corrections file changed: read the dataset again
    show_on_map_requested = Signal(str)  # an image (path) the user asked to see on the Explore screen's map

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.dataset_path: str = ""
        self.health: HealthReport | None = None
        self.model: Any = None  # ImageTextModel
        self.model_spec: str = "builtin"
        self.prompts: PromptSet = PromptSet()
        self.run_dir: str = ""
        self.split_settings: dict[str, Any] = {"val_fraction": 0.2, "test_fraction": 0.0, "seed": 0,
                                               "group_regex": None}
        # Image embeddings the scoring screens share; emptied when another dataset is opened.
        self.embeddings = EmbeddingStore(EmbeddingCache())

    def set_dataset(self, dataset: Dataset | None, path: str = "") -> None:
        self.dataset, self.dataset_path = dataset, path
        self.health = None
        self.embeddings.clear()
        self.dataset_changed.emit(dataset)

    def split_config(self) -> DataConfig:
        """The split settings as the engine takes them (which images validate and which test)."""
        s = self.split_settings
        return DataConfig(val_fraction=s["val_fraction"], test_fraction=s["test_fraction"], seed=s["seed"],
                          group_regex=s["group_regex"] or None)

    def set_health(self, health: HealthReport | None) -> None:
        self.health = health
        self.health_changed.emit(health)

    def set_model(self, model: Any, spec: str) -> None:
        self.model, self.model_spec = model, spec
        self.model_changed.emit(model)

    def set_prompts(self, prompts: PromptSet) -> None:
        self.prompts = prompts
        self.prompts_changed.emit(prompts)

    def set_run(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.run_changed.emit(run_dir)

    def post_status(self, text: str) -> None:
        self.status_posted.emit(text)

    def request_screen(self, key: str) -> None:
        self.screen_requested.emit(key)

    def request_show_on_map(self, path: str) -> None:
        self.show_on_map_requested.emit(path)

    def notify_corrections_changed(self) -> None:
        self.corrections_changed.emit()
