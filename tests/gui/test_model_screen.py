"""The Model screen: loading a model folder, offline Hub ids, the device probe."""

from __future__ import annotations

import threading
import time

import pytest

from clipstudio.engine.runtime.device import DeviceReport, GpuInfo
from clipstudio.gui.screens.model_screen import ModelScreen

WAIT_MS = 60_000


@pytest.fixture
def screen(open_screen, app_state):
    return open_screen(ModelScreen, app_state)


def load_and_wait(qtbot, screen) -> bool:
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS) as blocker:
        screen.load()
    return blocker.args[0]


def test_builtin_is_preselected(screen):
    assert screen.builtin_radio.isChecked()
    assert screen.spec() == "builtin"
    assert screen.load_button.isEnabled()


def test_loading_a_model_folder_sets_the_app_model_and_shows_its_facts(qtbot, screen, app_state, tiny_clip_dir):
    screen.set_spec(str(tiny_clip_dir))
    assert screen.folder_radio.isChecked() and screen.spec() == str(tiny_clip_dir)

    assert load_and_wait(qtbot, screen) is True

    assert app_state.model is not None and app_state.model_spec == str(tiny_clip_dir)
    info = {key: label.text() for key, label in screen.info_labels.items()}
    assert info["kind"] == "Hugging Face CLIP"
    assert info["embed_dim"] == "16"
    assert info["max_text_tokens"] == "77"
    assert info["runs_on"] == "CPU" or info["runs_on"].startswith("cuda")
    assert len(info["fingerprint"]) == 12
    assert not screen.load_progress.isVisibleTo(screen)


def test_offline_hub_id_shows_the_engines_message(qtbot, screen, app_state, message_boxes):
    screen.set_spec("someone/not-a-cached-model")
    assert screen.hub_radio.isChecked()
    assert load_and_wait(qtbot, screen) is False

    assert app_state.model is None
    assert len(message_boxes.shown) == 1
    message = message_boxes.texts()[0]
    assert "not in the local Hugging Face cache" in message
    assert "built-in model" in message and "local model folder" in message
    assert screen.load_status.text() == message


def test_a_folder_without_a_model_is_explained(qtbot, screen, app_state, tmp_path, message_boxes):
    screen.set_spec(str(tmp_path))
    assert load_and_wait(qtbot, screen) is False

    assert app_state.model is None
    assert "is not a model folder" in message_boxes.texts()[0]


def test_an_empty_choice_asks_for_a_model_without_loading(screen, app_state):
    screen.hub_radio.setChecked(True)
    screen.hub_combo.setEditText("")
    screen.load()
    assert not screen.busy()
    assert "Choose a model first" in screen.load_status.text()


def test_device_probe_reports_what_torch_sees(qtbot, screen):
    import os

    import torch

    with qtbot.waitSignal(screen.probe_finished, timeout=WAIT_MS):
        screen.probe()

    labels = screen.device_labels
    assert labels["cuda_available"].text() == f"<b>{torch.cuda.is_available()}</b>"
    assert labels["cpu"].text() == f"CPU ({os.cpu_count()} cores)"
    assert labels["torch"].text() == torch.__version__
    devices = [screen.device_combo.itemData(i) for i in range(screen.device_combo.count())]
    assert devices[:2] == ["auto", "cpu"]
    assert len(devices) == 2 + torch.cuda.device_count() * torch.cuda.is_available()


def test_showing_the_screen_probes_once(qtbot, screen):
    with qtbot.waitSignal(screen.probe_finished, timeout=WAIT_MS):
        screen.show()
    first = screen._probe_worker
    screen.hide()
    screen.show()
    assert screen._probe_worker is first


def test_a_model_set_elsewhere_is_shown(screen, app_state, tiny_clip_dir):
    from clipstudio.engine.models import load_model

    app_state.set_model(load_model(str(tiny_clip_dir), device="cpu"), "my-run")
    assert screen.info_labels["spec"].text() == "my-run"
    assert screen.info_labels["embed_dim"].text() == "16"


def test_the_medical_model_gallery_picks_a_model_and_knows_what_is_cached(qtbot, screen, tmp_path, monkeypatch):
    """BiomedCLIP's open_clip config and weights in the HF cache: its row says so, the others that they need internet."""
    import huggingface_hub.constants as hub_constants

    from clipstudio.engine.model_catalogue import KNOWN_MODELS
    from clipstudio.gui.widgets.model_gallery import CACHED, OFFLINE_NOT_CACHED

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    biomedclip = next(m for m in KNOWN_MODELS if m.name == "BiomedCLIP")
    repo = cache / f"models--{biomedclip.repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "open_clip_config.json").write_text("{}", encoding="utf-8")
    (repo / "snapshots" / "abc123" / "open_clip_pytorch_model.bin").write_bytes(b"")  # config + weights: cached

    gallery = screen.gallery
    names = [gallery.item(r, 0).text().splitlines()[0] for r in range(gallery.rowCount())]
    assert {"BiomedCLIP", "PLIP", "PubMedCLIP", "QuiltNet-B-32", "QuiltNet-B-16", "QuiltNet-B-16-PMB"} == set(names)
    assert "CONCH" not in names
    assert "ViT-B/16 + PubMedBERT" in gallery.item(names.index("BiomedCLIP"), 0).text()  # the architecture
    licence = [gallery.item(r, 2).text() for r in range(gallery.rowCount())]
    assert licence[names.index("BiomedCLIP")] == "MIT"

    screen.show()  # the first show checks the cache in a worker
    qtbot.waitUntil(lambda: gallery.status(names.index("BiomedCLIP")) == CACHED, timeout=20_000)
    assert gallery.status(names.index("PLIP")) == OFFLINE_NOT_CACHED  # tests run offline

    gallery.cellClicked.emit(names.index("PLIP"), 0)
    assert screen.hub_radio.isChecked() and screen.spec() == "vinid/plip"


def test_export_model_writes_a_folder_plain_transformers_loads(qtbot, screen, app_state, tiny_clip_dir, tmp_path):
    assert not screen.export_button.isEnabled()  # nothing loaded yet
    screen.set_spec(str(tiny_clip_dir))
    assert load_and_wait(qtbot, screen) is True
    assert screen.export_button.isEnabled()

    out = tmp_path / "exports" / "tiny-hf"
    with qtbot.waitSignal(screen.exported, timeout=60_000) as blocker:
        assert screen.export_model("hf", str(out))
    assert blocker.args[0] == str(out)
    from transformers import CLIPModel

    exported = CLIPModel.from_pretrained(out)
    assert exported.config.projection_dim == 16
    assert str(out) in screen.load_status.text() and "Hugging Face folder" in screen.load_status.text()


BIOMEDCLIP = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


def _online_download_of_biomedclip(monkeypatch, download):
    """The load of BiomedCLIP finds the Hub reachable and the cache empty, and downloads with ``download``."""
    from clipstudio.engine.models import hub

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "missing_from_cache", lambda repo_id: ["its configuration and weights"])
    monkeypatch.setattr(hub, "download_model", download)


def test_a_download_shows_its_progress_and_cancel_stops_it(qtbot, screen, app_state, monkeypatch):
    from PySide6.QtCore import Qt

    from clipstudio.engine.events import DOWNLOAD_STAGE, ProgressUpdated
    from clipstudio.gui.widgets.model_gallery import NOT_CACHED

    def download(repo_id, callback, should_stop):
        total = 800 * 1024**2
        callback(ProgressUpdated(DOWNLOAD_STAGE, total // 4, total))
        while not should_stop():  # a transfer that goes on until the user stops it
            time.sleep(0.02)
        return None

    _online_download_of_biomedclip(monkeypatch, download)
    row = [m.repo_id for m in screen.gallery.models].index(BIOMEDCLIP)
    screen.show()
    qtbot.waitUntil(lambda: screen.gallery.status(row) == NOT_CACHED, timeout=WAIT_MS)  # online: it would download
    screen.gallery.cellClicked.emit(row, 0)
    screen.load()

    qtbot.waitUntil(lambda: screen.cancel_button.isVisible(), timeout=WAIT_MS)
    assert "25 % (200 of 800 MB)" in screen.load_status.text()
    assert screen.load_progress.maximum() == 1000 and screen.load_progress.value() == 250
    assert screen.gallery.status(row).startswith("downloading… 25 %")
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(screen.cancel_button, Qt.MouseButton.LeftButton)

    assert blocker.args == [False] and app_state.model is None
    assert "stopped" in screen.load_status.text() and "kept" in screen.load_status.text()
    assert not screen.cancel_button.isVisibleTo(screen) and not screen.load_progress.isVisibleTo(screen)
    assert screen.load_button.isEnabled()


def test_offline_a_load_names_the_text_encoder_files_the_cache_lacks(
    qtbot, screen, app_state, message_boxes, tmp_path, monkeypatch
):
    import json

    import huggingface_hub.constants as hub_constants

    from tests.fixtures_models import hf_cache_snapshot

    text_repo = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = hf_cache_snapshot(tmp_path / "hub", BIOMEDCLIP)  # the model came down, its text encoder not
    config = {"model_cfg": {"text_cfg": {"hf_model_name": text_repo}}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"")
    screen.set_spec(BIOMEDCLIP)

    assert load_and_wait(qtbot, screen) is False  # tests run offline

    assert app_state.model is None
    message = message_boxes.texts()[0]
    assert "offline" in message and f"text encoder's files ({text_repo}: config.json, vocab.txt)" in message
    assert screen.load_status.text() == message


def test_a_finished_download_goes_on_to_load_the_model(qtbot, screen, app_state, monkeypatch, tiny_clip_dir):
    import clipstudio.engine.models as models
    from clipstudio.engine.events import DOWNLOAD_STAGE, ProgressUpdated

    seen: list[int] = []

    def download(repo_id, callback, should_stop):
        for done in (0, 500, 1000):
            callback(ProgressUpdated(DOWNLOAD_STAGE, done * 1024**2, 1000 * 1024**2))
        return tiny_clip_dir

    real_load = models.load_model
    loading = threading.Event()  # held until the screen has shown the load that follows the download

    def load(spec, device):
        assert loading.wait(WAIT_MS / 1000)
        return real_load(str(tiny_clip_dir), device=device)

    monkeypatch.setattr(models, "load_model", load)
    _online_download_of_biomedclip(monkeypatch, download)
    screen.load_progress.valueChanged.connect(seen.append)
    screen.set_spec(BIOMEDCLIP)

    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS) as blocker:
        screen.load()
        try:  # downloaded, now loading: no Cancel (it could no longer stop anything), a busy bar
            qtbot.waitUntil(lambda: "loading it" in screen.load_status.text(), timeout=WAIT_MS)
            assert not screen.cancel_button.isVisibleTo(screen)
            assert screen.load_progress.maximum() == 0
            assert seen[-1] == 1000  # the bar filled as the bytes came in
        finally:
            loading.set()
    assert blocker.args[0] is True

    assert app_state.model is not None and app_state.model_spec == BIOMEDCLIP
    assert screen.load_status.text() == f"Loaded {BIOMEDCLIP}."
    assert not screen.cancel_button.isVisibleTo(screen)


def test_several_gpus_are_each_listed_with_their_memory(screen):
    gib = 1024**3
    report = DeviceReport(
        torch_version="2.x", cuda_build="12.4", cuda_available=True, cpu_cores=32,
        gpus=(GpuInfo(0, "NVIDIA H100", 70 * gib, 80 * gib), GpuInfo(1, "NVIDIA H100", 79 * gib, 80 * gib)),
    )
    screen._on_probe_worker_succeeded(report)
    assert screen.device_labels["gpus"].text().splitlines() == [
        "cuda:0: NVIDIA H100 — 70.0 GiB free of 80.0 GiB",
        "cuda:1: NVIDIA H100 — 79.0 GiB free of 80.0 GiB",
    ]
    assert "Use all 2 GPUs" in screen.device_note.text()
    assert screen.device_combo.findData("cuda:1") >= 0
