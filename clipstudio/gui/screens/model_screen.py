"""The Model screen: pick the model to start from (built-in, Hugging Face, folder, earlier run) and a device.

torch and transformers are imported only inside worker jobs, so opening the window stays fast.
The device panel is where a user checks that the bundled torch sees the GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.events import DOWNLOAD_STAGE, MessageLogged, ProgressUpdated
from clipstudio.engine.runs.layout import is_run_folder, runs_root
from clipstudio.engine.runtime.device import DeviceReport, GpuInfo, probe_devices
from clipstudio.gui.errors import show_error
from clipstudio.gui.help import TERMS, explain
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.model_gallery import ModelGallery, check_cache, download_line
from clipstudio.gui.workers import TaskWorker

HUB_SUGGESTIONS = [
    "openai/clip-vit-base-patch32",
    "openai/clip-vit-base-patch16",
    "vinid/plip",
    "flaviagiammarino/pubmed-clip-vit-base-patch32",
]
EXPORT_FORMATS = {"hf": "Hugging Face folder (transformers)", "onnx": "ONNX (onnxruntime)"}
BUILTIN_DESCRIPTION = (
    "EfficientNet-Lite0 image encoder + MiniLM text encoder, aligned on ImageNet class names. "
    "Ships with CLIP Studio and works offline; a solid start for fine-tuning."
)
KIND_NAMES = {
    "builtin": "Built-in (EfficientNet-Lite0 + MiniLM)",
    "hf_clip": "Hugging Face CLIP",
    "dual_encoder": "CLIP Studio dual encoder",
    "vit_hf_text": "ViT + Hugging Face text encoder (open_clip format)",
}
SOURCES = ("builtin", "hub", "folder", "run")
GIB = 1024**3


def describe_model(model: Any, *, with_fingerprint: bool = True) -> dict[str, str]:
    """The facts the screen shows about a loaded model, as display strings."""
    device = str(model.device)
    runs_on = device
    if device.startswith("cuda"):
        import torch

        runs_on = f"{device} ({torch.cuda.get_device_name(model.device)})"
    elif device == "cpu":
        runs_on = "CPU"
    info = {
        "kind": KIND_NAMES.get(getattr(model, "kind", ""), str(getattr(model, "kind", "?"))),
        "embed_dim": str(model.embed_dim),
        "max_text_tokens": str(model.max_text_tokens),
        "logit_scale": f"{model.logit_scale:.2f}",
        "runs_on": runs_on,
        "fingerprint": "—",
    }
    if with_fingerprint:
        info["fingerprint"] = model.fingerprint()[:12]
    return info


LOAD_STAGE = "load model"  # after a download: the load job's last part, which Cancel can't stop


def load_job(spec: str, device: str):
    """The worker job: load ``spec`` on ``device``, first downloading a Hub model the cache lacks (with
    byte progress; stopping there returns None and the worker reports the load cancelled)."""

    def job(callback, should_stop):
        # deferred: the models import torch, which only the worker waits for.
        from clipstudio.engine.models import load_model
        from clipstudio.engine.models.hub import (
            download_model,
            hub_offline,
            looks_like_hub_id,
            missing_from_cache,
        )

        hub_id = looks_like_hub_id(spec) and not Path(spec).expanduser().exists()
        if hub_id and missing_from_cache(spec):
            if not hub_offline():  # offline, download_model says which files the cache lacks
                callback(MessageLogged("info", f"Downloading {spec} from the Hugging Face Hub…"))
            if download_model(spec, callback, should_stop) is None:
                return None
            callback(ProgressUpdated(LOAD_STAGE, 0, 0))  # downloaded: the rest can't be cancelled
        model = load_model(spec, device=device)
        return model, describe_model(model)

    return job


class ModelScreen(QWidget):
    title = "Model"
    icon_name = "model"

    load_finished = Signal(bool)  # a load() ended: True when the model is now in AppState
    exported = Signal(str)  # an export finished: its folder
    probe_finished = Signal()  # a device probe ended

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._load_worker: TaskWorker | None = None
        self._probe_worker: TaskWorker | None = None
        self._probed = False
        self._loaded_model: Any = None
        self.device_info: DeviceReport | None = None

        # --- choose ---
        self.source_group = QButtonGroup(self)
        self.builtin_radio = QRadioButton("Built-in model (offline)")
        self.hub_radio = QRadioButton("Hugging Face model")
        self.folder_radio = QRadioButton("Model folder")
        self.run_radio = QRadioButton("Earlier training run")
        for i, radio in enumerate((self.builtin_radio, self.hub_radio, self.folder_radio, self.run_radio)):
            self.source_group.addButton(radio, i)
        self.builtin_radio.setChecked(True)
        self.source_group.idToggled.connect(self._on_source_group_id_toggled)

        builtin_note = _hint(BUILTIN_DESCRIPTION)
        self.hub_combo = QComboBox()
        self.hub_combo.setEditable(True)
        self.hub_combo.addItems(HUB_SUGGESTIONS)
        self.hub_combo.setMinimumContentsLength(36)
        self.hub_combo.lineEdit().setPlaceholderText("owner/name")
        hub_note = _hint("Downloaded once into the Hugging Face cache (needs internet the first time), or "
                         "pick a medical model from the list on the right.")
        self.gallery = ModelGallery()
        self.gallery.chosen.connect(self._on_gallery_chosen)
        self._cache_worker: TaskWorker | None = None
        self._cache_checked = False
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("A saved CLIP Studio model or a Hugging Face CLIP folder")
        self.folder_browse = QPushButton("Browse…")
        self.folder_browse.clicked.connect(self._on_folder_browse_clicked)
        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("A run folder; its best checkpoint is loaded")
        self.run_browse = QPushButton("Browse…")
        self.run_browse.clicked.connect(self._on_run_browse_clicked)

        choose = QGroupBox("Start from")
        grid = QVBoxLayout(choose)
        grid.addWidget(self.builtin_radio)
        grid.addWidget(_indented(builtin_note))
        grid.addWidget(self.hub_radio)
        grid.addWidget(_indented(self.hub_combo, hub_note))
        grid.addWidget(self.folder_radio)
        grid.addWidget(_indented(_row(self.folder_edit, self.folder_browse)))
        grid.addWidget(self.run_radio)
        grid.addWidget(_indented(_row(self.run_edit, self.run_browse)))

        self.device_combo = QComboBox()
        self.device_combo.addItem("auto (GPU if available)", "auto")
        self.device_combo.addItem("cpu", "cpu")
        self.load_button = QPushButton("Load model")
        self.load_button.setObjectName("primary")
        self.load_button.setDefault(True)
        self.load_button.setMinimumHeight(34)
        self.load_button.clicked.connect(self._on_load_button_clicked)
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 0)
        self.load_progress.setMaximumWidth(160)
        self.load_progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; the files already downloaded are kept and the next "
                                      "load continues from there")
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.cancel_button.hide()
        self._loading_spec = ""
        self.load_status = QLabel()
        self.load_status.setWordWrap(True)
        self.load_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        load_row = QHBoxLayout()
        load_row.addWidget(QLabel("Run on"))
        load_row.addWidget(self.device_combo)
        load_row.addSpacing(12)
        load_row.addWidget(self.load_button)
        load_row.addWidget(self.load_progress)
        load_row.addWidget(self.cancel_button)
        load_row.addStretch(1)

        # --- loaded model ---
        self.info_labels: dict[str, QLabel] = {}
        loaded = QGroupBox("Loaded model")
        form = QFormLayout(loaded)
        for key, name in (
            ("spec", "Source"),
            ("kind", "Kind"),
            ("embed_dim", "Embedding size"),
            ("max_text_tokens", "Max text tokens"),
            ("logit_scale", "Logit scale"),
            ("fingerprint", "Fingerprint"),
            ("runs_on", "Runs on"),
        ):
            label = QLabel("—")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.info_labels[key] = label
            if key not in TERMS:
                form.addRow(name, label)
                continue
            caption = QLabel(name)  # jargon: the caption and the value explain themselves, with a link
            row = QHBoxLayout()
            row.addWidget(label)
            row.addWidget(explain(key, caption, label))
            row.addStretch(1)
            form.addRow(caption, row)
        self.info_labels["spec"].setText("No model loaded yet: pick one above and press Load model.")
        self.export_button = QPushButton("Export model…")
        self.export_button.setToolTip("Write the loaded model for use outside CLIP Studio: a folder plain "
                                      "transformers loads, or ONNX encoders + the class head for onnxruntime")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self._export_worker: TaskWorker | None = None
        export_row = _row(self.export_button)
        export_row.layout().addStretch(1)
        form.addRow("", export_row)

        # --- device ---
        device_box = QGroupBox("Compute device")
        self.device_labels: dict[str, QLabel] = {}
        dform = QFormLayout()
        for key, name in (
            ("cuda_available", "torch.cuda.is_available()"),
            ("gpus", "GPU"),
            ("cuda_build", "CUDA (torch build)"),
            ("torch", "torch"),
            ("cpu", "CPU"),
        ):
            label = QLabel("…")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.device_labels[key] = label
            dform.addRow(name, label)
        self.probe_button = QPushButton("Check again")
        self.probe_button.clicked.connect(self.probe)
        self.device_note = _hint("")
        dlayout = QVBoxLayout(device_box)
        dlayout.addLayout(dform)
        dlayout.addWidget(self.device_note)
        dlayout.addWidget(self.probe_button, 0, Qt.AlignmentFlag.AlignLeft)

        left = QVBoxLayout()
        left.addWidget(choose)
        left.addLayout(load_row)
        left.addWidget(self.load_status)
        left.addWidget(loaded)
        left.addStretch(1)
        gallery_box = QGroupBox("Medical models")
        gallery_layout = QVBoxLayout(gallery_box)
        gallery_layout.addWidget(self.gallery, 1)
        gallery_layout.addWidget(_hint("Click one to pick it, then Load model. Hover for the Hub id and the "
                                       "model card's terms; check the licence before you use a model."))
        right = QVBoxLayout()
        right.addWidget(device_box)
        right.addWidget(gallery_box, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 5)
        layout.addLayout(right, 4)

        self._on_source_group_id_toggled(0, True)
        state.model_changed.connect(self._on_state_model_changed)

    # --- the screen contract -------------------------------------------------------------------
    def busy(self) -> bool:
        return any(w is not None and w.isRunning() for w in (self._load_worker, self._probe_worker, self._cache_worker, self._export_worker))

    def shutdown(self) -> None:
        for worker in (self._load_worker, self._probe_worker, self._cache_worker, self._export_worker):
            if worker is not None:
                worker.cancel()
        for worker in (self._load_worker, self._probe_worker, self._cache_worker, self._export_worker):
            if worker is not None:
                worker.wait()

    # --- public --------------------------------------------------------------------------------
    def spec(self) -> str:
        """The model spec the chosen source and its field give ("" when the field is empty)."""
        source = SOURCES[self.source_group.checkedId()]
        if source == "builtin":
            return "builtin"
        edit = {"hub": self.hub_combo.lineEdit(), "folder": self.folder_edit, "run": self.run_edit}[source]
        return edit.text().strip()

    def set_spec(self, spec: str) -> None:
        """Select the source for ``spec`` (builtin, a folder, a run folder or a Hub id) and fill its field."""
        if spec == "builtin":
            self.builtin_radio.setChecked(True)
            return
        path = Path(spec).expanduser()
        if path.exists():
            is_run = is_run_folder(path)
            (self.run_edit if is_run else self.folder_edit).setText(spec)
            (self.run_radio if is_run else self.folder_radio).setChecked(True)
        else:
            self.hub_combo.setEditText(spec)
            self.hub_radio.setChecked(True)

    def load(self) -> None:
        """Load the chosen model on the chosen device, in the background."""
        spec = self.spec()
        if not spec:
            self.load_status.setText("Choose a model first: type a Hugging Face id or pick a folder.")
            return
        if self._load_worker is not None and self._load_worker.isRunning():
            return
        device = self.device_combo.currentData() or "auto"
        worker = TaskWorker(load_job(spec, device), name="load model", parent=self)
        worker.event_emitted.connect(self._on_load_worker_event_emitted)
        worker.succeeded.connect(lambda result, s=spec: self._on_load_worker_succeeded(s, result))
        worker.failed.connect(self._on_load_worker_failed)
        worker.cancelled.connect(self._on_load_worker_cancelled)
        self._load_worker = worker
        self._loading_spec = spec
        self.load_button.setEnabled(False)
        self.load_progress.setRange(0, 0)  # busy until a download says how big it is
        self.load_progress.show()
        self.load_status.setStyleSheet("")
        self.load_status.setText(f"Loading {spec}…")
        self.state.post_status(f"Loading model {spec}…")
        worker.start()

    def probe(self) -> None:
        """Ask torch which devices it sees, in the background."""
        if self._probe_worker is not None and self._probe_worker.isRunning():
            return
        self._probed = True
        worker = TaskWorker(lambda _callback, _should_stop: probe_devices(), name="probe devices", parent=self)
        worker.succeeded.connect(self._on_probe_worker_succeeded)
        worker.failed.connect(self._on_probe_worker_failed)
        self._probe_worker = worker
        self.probe_button.setEnabled(False)
        for label in self.device_labels.values():
            label.setText("…")
        self.device_note.setText("Asking torch (the first time takes a few seconds)…")
        worker.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._probed:
            self.probe()
        if not self._cache_checked:
            self.check_model_cache()

    def check_model_cache(self) -> None:
        """Find which gallery models the Hugging Face cache holds, in the background."""
        if self._cache_worker is not None and self._cache_worker.isRunning():
            return
        self._cache_checked = True
        worker = TaskWorker(lambda _callback, _should_stop: check_cache(), name="check model cache", parent=self)
        worker.succeeded.connect(self.gallery.set_cached)
        self._cache_worker = worker
        worker.start()

    # --- slots -------------------------------------------------------------------------------------
    def _on_gallery_chosen(self, repo_id: str) -> None:
        self.hub_radio.setChecked(True)
        self.hub_combo.setEditText(repo_id)
        self.load_status.setText(f"{repo_id}: press Load model.")

    def _on_source_group_id_toggled(self, _id: int, checked: bool) -> None:
        if not checked:
            return
        source = SOURCES[self.source_group.checkedId()]
        self.hub_combo.setEnabled(source == "hub")
        for widget in (self.folder_edit, self.folder_browse):
            widget.setEnabled(source == "folder")
        for widget in (self.run_edit, self.run_browse):
            widget.setEnabled(source == "run")

    def _on_folder_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _on_run_browse_clicked(self) -> None:
        start = self.run_edit.text() or str(runs_root())
        folder = QFileDialog.getExistingDirectory(self, "Choose a training run folder", start)
        if folder:
            self.run_edit.setText(folder)

    def _on_load_button_clicked(self) -> None:
        self.load()

    def _on_cancel_button_clicked(self) -> None:
        if self._load_worker is not None and self._load_worker.isRunning():
            self._load_worker.cancel()
            self.cancel_button.setEnabled(False)
            self.load_status.setText("Stopping the download…")

    def _on_load_worker_event_emitted(self, event: object) -> None:
        if isinstance(event, MessageLogged):
            self.load_status.setText(event.text)
        elif isinstance(event, ProgressUpdated) and event.stage == DOWNLOAD_STAGE:
            self.cancel_button.setVisible(True)
            if event.total > 0:
                self.load_progress.setRange(0, 1000)
                self.load_progress.setValue(min(1000, 1000 * event.done // event.total))
            line = download_line(event.done, event.total)
            self.load_status.setText(f"{self._loading_spec}: {line}")
            self.gallery.set_downloading(self._loading_spec, event.done, event.total)
        elif isinstance(event, ProgressUpdated) and event.stage == LOAD_STAGE:
            self.cancel_button.hide()
            self.load_progress.setRange(0, 0)  # busy: reading (and, the first time, converting) the weights
            self.load_status.setText(f"Downloaded {self._loading_spec}; loading it…")

    def _on_load_worker_cancelled(self) -> None:
        self._end_loading()
        self.load_status.setStyleSheet("")
        self.load_status.setText(f"Download of {self._loading_spec} stopped. The files already downloaded are "
                                 "kept; Load model continues from there.")
        self.state.post_status("Download stopped.")
        self.load_finished.emit(False)

    def _on_load_worker_succeeded(self, spec: str, result: tuple[Any, dict[str, str]]) -> None:
        self._end_loading()
        model, info = result
        self._loaded_model = model
        self._show_info(spec, info)
        self.load_status.setText("Loaded the built-in model." if spec == "builtin" else f"Loaded {spec}.")
        self.state.set_model(model, spec)
        self.state.post_status(f"Model loaded: {info['kind']} on {info['runs_on']}.")
        self.load_finished.emit(True)

    def _on_load_worker_failed(self, message: str, details: str) -> None:
        self._end_loading()
        message = message.replace("`--model builtin`", "the built-in model")  # the CLI's wording
        self.load_status.setStyleSheet("color: #b3261e;")
        self.load_status.setText(message)
        self.state.post_status("The model could not be loaded.")
        show_error(self, message, details)
        self.load_finished.emit(False)

    def _end_loading(self) -> None:
        self.load_button.setEnabled(True)
        self.load_progress.hide()
        self.cancel_button.hide()
        self.cancel_button.setEnabled(True)
        self.check_model_cache()  # a download may have filled (or part-filled) the cache

    def _on_probe_worker_succeeded(self, info: DeviceReport) -> None:
        self.probe_button.setEnabled(True)
        self.device_info = info
        labels = self.device_labels
        labels["cuda_available"].setText(f"<b>{info.cuda_available}</b>")
        labels["torch"].setText(info.torch_version)
        labels["cuda_build"].setText(info.cuda_build or "none (CPU-only build of torch)")
        labels["cpu"].setText(f"CPU ({info.cpu_cores} cores)")
        gpus = [_describe_gpu(g) for g in info.gpus]
        labels["gpus"].setText("\n".join(gpus) if gpus else "none found")
        if len(info.gpus) > 1:
            self.device_note.setText(
                f"Models run on {info.gpus[0].name} when the device is auto. Training can use all "
                f"{len(info.gpus)} GPUs: tick “Use all {len(info.gpus)} GPUs” on the Train screen."
            )
        elif info.cuda_available:
            self.device_note.setText(f"Models run on {info.gpus[0].name} when the device is auto.")
        elif info.cuda_build:
            self.device_note.setText(
                "This torch is built with CUDA but sees no GPU: check that the NVIDIA driver is installed "
                "and up to date. Models run on the CPU (slower, but everything works)."
            )
        else:
            self.device_note.setText(f"Models run on the CPU ({info.cpu_cores} cores).")
        current = self.device_combo.currentData()
        while self.device_combo.count() > 2:
            self.device_combo.removeItem(2)
        for gpu in info.gpus:
            self.device_combo.addItem(f"cuda:{gpu.index} — {gpu.name}", f"cuda:{gpu.index}")
        at = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(at, 0))
        self.probe_finished.emit()

    def _on_probe_worker_failed(self, message: str, _details: str) -> None:
        self.probe_button.setEnabled(True)
        for label in self.device_labels.values():
            label.setText("—")
        self.device_note.setText(f"Could not ask torch about devices: {message}")
        self.probe_finished.emit()

    def _on_state_model_changed(self, model: Any) -> None:
        self.export_button.setEnabled(model is not None)
        if model is None:
            self._loaded_model = None
            for label in self.info_labels.values():
                label.setText("—")
            self.info_labels["spec"].setText("No model loaded.")
        elif model is not self._loaded_model:  # set by another screen (e.g. a trained model)
            self._loaded_model = model
            self._show_info(self.state.model_spec, describe_model(model, with_fingerprint=False))

    # --- export -----------------------------------------------------------------------------------
    def export_model(self, fmt: str, output: str) -> bool:
        """Export the loaded model (its spec: built-in, Hub id, folder or run) as ``fmt`` ("hf" or "onnx")
        into the new folder ``output``, in a worker; an ONNX head gets the open dataset's classes."""
        if self.state.model is None or (self._export_worker is not None and self._export_worker.isRunning()):
            return False
        spec, dataset = self.state.model_spec, self.state.dataset
        classes = list(dataset.class_names) if dataset is not None and dataset.is_classification else None

        def job(_callback, _should_stop):
            from clipstudio.engine.export.model_export import export_model  # deferred: loads torch models

            return export_model(spec, fmt, output, class_names=classes)

        worker = TaskWorker(job, name="export model", parent=self)
        worker.succeeded.connect(self._on_export_succeeded)
        worker.failed.connect(lambda message, details: show_error(self, message, details))
        worker.finished.connect(lambda: self.export_button.setEnabled(self.state.model is not None))
        self._export_worker = worker
        self.export_button.setEnabled(False)
        self.load_status.setText(f"Exporting as {EXPORT_FORMATS[fmt]} to {output}…")
        worker.start()
        return True

    def _on_export_button_clicked(self) -> None:
        names = list(EXPORT_FORMATS.values())
        choice, ok = QInputDialog.getItem(self, "Export model", "Format:", names, 0, False)
        if not ok:
            return
        fmt = next(key for key, name in EXPORT_FORMATS.items() if name == choice)
        parent = QFileDialog.getExistingDirectory(self, "Export into which folder?")
        if not parent:
            return
        stem = Path(self.state.model_spec.rstrip("/\\")).name or "model"
        output = Path(parent) / f"{stem}-{fmt}"
        n = 2
        while output.exists():
            output, n = Path(parent) / f"{stem}-{fmt}-{n}", n + 1
        self.export_model(fmt, str(output))

    def _on_export_succeeded(self, result: Any) -> None:
        cosines = [v for v in result.parity.values() if isinstance(v, float)]
        check = f"; onnxruntime check: cosine ≥ {min(cosines):.5f}" if cosines else ""
        text = f"Exported ({EXPORT_FORMATS[result.format]}) to {result.output}{check}. See README.md there."
        self.load_status.setText(text)
        self.state.post_status(text)
        self.exported.emit(str(result.output))

    def _show_info(self, spec: str, info: dict[str, str]) -> None:
        self.info_labels["spec"].setText("Built-in model" if spec == "builtin" else spec)
        for key, value in info.items():
            if key in self.info_labels:
                self.info_labels[key].setText(value)


def _describe_gpu(gpu: GpuInfo) -> str:
    text = f"cuda:{gpu.index}: {gpu.name}"
    if gpu.total_bytes is not None:
        text += f" — {gpu.free_bytes / GIB:.1f} GiB free of {gpu.total_bytes / GIB:.1f} GiB"
    elif gpu.memory_error:
        text += f" (memory unknown: {gpu.memory_error})"
    return text


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("hint")
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
    return box


def _indented(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(24, 0, 0, 6)
    for w in widgets:
        layout.addWidget(w)
    return box
