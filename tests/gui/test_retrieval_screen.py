"""The Retrieval screen: text and image queries over the dataset, with any model."""

from __future__ import annotations

import pytest

from clipstudio.gui.screens.retrieval_screen import RetrievalScreen
from clipstudio.gui.state import AppState


@pytest.fixture
def state(make_class_folders, tmp_path, state_with):
    return state_with(make_class_folders(tmp_path / "data", {"blue": 4, "green": 4, "red": 4}))


@pytest.fixture
def screen(open_screen, state):
    return open_screen(RetrievalScreen, state)


def test_text_query_returns_k_images_and_repeat_queries_reuse_the_embeddings(qtbot, screen, monkeypatch):
    from clipstudio.engine.evaluation import embedding_store

    calls = []
    real = embedding_store.encode_image_files
    monkeypatch.setattr(embedding_store, "encode_image_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    screen.k_spin.setValue(5)
    assert screen.similarity_link.isHidden()  # no scores yet, nothing to explain
    with qtbot.waitSignal(screen.searched, timeout=30_000) as blocker:
        screen.search_text("a red square")
    hits = blocker.args[0]
    assert not screen.similarity_link.isHidden()
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(screen.grid.visible_tiles()) == 5
    assert screen.grid.visible_tiles()[0].lines[0].startswith("#1")

    with qtbot.waitSignal(screen.searched, timeout=30_000) as blocker:
        screen.search_text("a blue square")
    assert len(blocker.args[0]) == 5
    assert len(calls) == 1  # the gallery was encoded once


def test_image_query_finds_itself_first(qtbot, screen, state):
    query = str(state.dataset.samples[5].path)
    with qtbot.waitSignal(screen.image_searched, timeout=30_000) as blocker:
        screen.search_image(query)
    image_hits, caption_hits = blocker.args
    assert image_hits[0].path == query
    assert image_hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert caption_hits == []  # class folders have no captions
    assert screen.captions_box.isHidden()


def test_image_query_on_captioned_data_lists_nearest_captions(
    qtbot, make_clip_finetune, tmp_path, tiny_model
):
    from clipstudio.engine.data import load_dataset

    root = make_clip_finetune(tmp_path / "pairs", {"train": 4, "val": 2})
    app_state = AppState()
    app_state.set_dataset(load_dataset(root), str(root))
    app_state.set_model(tiny_model, "tiny")
    widget = RetrievalScreen(app_state)
    qtbot.addWidget(widget)
    query = str(app_state.dataset.samples[0].path)
    widget.k_spin.setValue(3)
    with qtbot.waitSignal(widget.image_searched, timeout=30_000) as blocker:
        widget.search_image(query)
    image_hits, caption_hits = blocker.args
    assert image_hits[0].path == query
    assert len(caption_hits) == 3
    assert widget.captions_table.rowCount() == 3
    assert not widget.captions_box.isHidden()
    widget.shutdown()


def test_search_with_a_model_from_another_folder(qtbot, screen, tiny_clip_dir):
    screen.add_model_folder(str(tiny_clip_dir))
    with qtbot.waitSignal(screen.searched, timeout=60_000) as blocker:
        screen.search_text("a green square")
    assert len(blocker.args[0]) == 12
    assert str(tiny_clip_dir) in screen.models


def test_without_model_the_banner_offers_the_builtin_model(qtbot, make_class_folders, tmp_path):
    from clipstudio.engine.data import load_dataset

    root = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    app_state = AppState()
    app_state.set_dataset(load_dataset(root), str(root))
    widget = RetrievalScreen(app_state)
    qtbot.addWidget(widget)
    statuses: list[str] = []
    app_state.status_posted.connect(statuses.append)
    widget.search_text("anything")
    assert not widget.busy()
    assert not widget.banner.isHidden()
    assert widget.banner.load_button.text() == "Load the built-in model"
    assert not widget.banner.load_button.isHidden()
    # The press is answered: the banner lights up, says what is missing in the status bar and
    # hands the focus to its button.
    assert "#d08000" in widget.banner.styleSheet()
    assert statuses and statuses[-1].startswith("No model is loaded yet")
    qtbot.waitUntil(lambda: "#d08000" not in widget.banner.styleSheet(), timeout=5000)
    widget.shutdown()


def test_a_dicom_query_image_is_previewed(qtbot, screen, tmp_path):
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "chest.dcm"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "OT"
    ds.set_pixel_data(np.tile(np.arange(0, 200, 5, dtype=np.uint8), (20, 1)), "MONOCHROME2", 8)
    ds.save_as(path, enforce_file_format=True)

    with qtbot.waitSignal(screen.image_searched, timeout=30_000):
        screen.search_image(str(path))
    preview = screen.query_preview.pixmap()
    assert not preview.isNull()
    assert max(preview.width(), preview.height()) == 68  # fitted to the preview frame, aspect kept
    assert preview.width() == 2 * preview.height()  # 40 x 20 px image


def test_an_unreadable_query_image_shows_a_placeholder(qtbot, screen, tmp_path, monkeypatch):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    monkeypatch.setattr(screen, "_start_query", lambda *args: None)  # only the preview is under test
    screen.search_image(str(bad))
    assert screen.query_preview.text() == "query"
    assert str(bad) in screen.query_path_label.text()


def _fake_run(folder) -> str:
    import json

    from clipstudio.engine.runs.layout import CONFIG_FILE, RUN_FILE

    folder.mkdir(parents=True)
    (folder / RUN_FILE).write_text(json.dumps({"method": "full"}))
    (folder / CONFIG_FILE).write_text("{}")
    return str(folder)


def test_model_picker_offers_recent_runs_besides_the_current_one(qtbot, state, tmp_path):
    from clipstudio.engine.runs.layout import runs_root
    from clipstudio.gui.settings import AppSettings

    in_runs_folder = _fake_run(runs_root() / "20250101-120000-lora")
    opened_elsewhere = _fake_run(tmp_path / "elsewhere" / "my-run")
    AppSettings().add_recent_run(opened_elsewhere)
    widget = RetrievalScreen(state)
    qtbot.addWidget(widget)
    items = {widget.model_combo.itemText(i): widget.model_combo.itemData(i) for i in range(widget.model_combo.count())}
    assert items["Recent run: my-run"] == f"run:{opened_elsewhere}"
    assert items["Recent run: 20250101-120000-lora"] == f"run:{in_runs_folder}"
    at = widget.model_combo.findData(f"run:{opened_elsewhere}")
    assert widget.model_combo.itemData(at, 3) == opened_elsewhere  # ToolTipRole: the full path
    state.set_run(in_runs_folder)  # the current run is listed once, as the training run
    texts = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert "Training run: 20250101-120000-lora" in texts and "Recent run: 20250101-120000-lora" not in texts
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(f"run:{opened_elsewhere}"))
    assert widget._model_source() == (None, opened_elsewhere)
    widget.shutdown()
