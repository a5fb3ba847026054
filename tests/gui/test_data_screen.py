"""The Data screen: opening datasets, the health report, key fields, split settings."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QHeaderView

from clipstudio.gui.screens.data_screen import DataScreen
from clipstudio.gui.widgets import health_view

WAIT_MS = 30_000


@pytest.fixture
def screen(open_screen, app_state):
    return open_screen(DataScreen, app_state, size=(1200, 800))


def open_and_wait(qtbot, screen, path, **keys):
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.open_dataset(str(path), **keys)


def test_class_folders_show_format_counts_and_class_chart(qtbot, screen, app_state, make_class_folders, tmp_path):
    root = make_class_folders(
        tmp_path / "xray", {"train": {"normal": 4, "pneumonia": 2}, "test": {"normal": 2, "pneumonia": 1}}
    )
    open_and_wait(qtbot, screen, root)

    assert "Class folders (train/test splits)" in screen.format_label.text()
    assert "9 images" in screen.format_label.text() and "2 classes" in screen.format_label.text()
    assert len(app_state.dataset) == 9 and app_state.dataset_path == str(root)
    # The report itself (the evaluation report reads its fields), not its JSON form.
    assert app_state.health.n_images == 9 and app_state.health.classes == {"normal": 6, "pneumonia": 3}
    view = screen.health_view
    assert view.chart_categories == ["normal", "pneumonia"]
    assert view.chart_series == {"train": [4, 2], "test": [2, 1]}
    assert screen.thumbnails.model.rowCount() == 9
    assert not view.banner.isVisibleTo(screen)


def test_imbalance_of_3_to_1_shows_a_banner(qtbot, screen, make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "cells", {"common": 9, "rare": 3})
    open_and_wait(qtbot, screen, root)

    banner = screen.health_view.banner
    assert banner.isVisibleTo(screen)
    assert "3.0:1" in banner.text() and "common" in banner.text()
    assert screen.health_view.chart_series == {"all": [9, 3]}


def test_unreadable_files_are_listed_and_double_click_reveals_them(
    qtbot, screen, app_state, make_class_folders, tmp_path, monkeypatch
):
    root = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 3})
    broken = root / "normal" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    revealed = []
    monkeypatch.setattr(health_view, "reveal_in_file_manager", revealed.append)
    open_and_wait(qtbot, screen, root)

    assert app_state.health.n_unreadable == 1
    assert screen.health_view.problem_paths() == [str(broken)]
    assert screen.health_view.tabs.isVisibleTo(screen)
    assert "1 file could not be read" in screen.health_view.warnings.text()

    table = screen.health_view.problems_table
    # The reason is read whole; a long path gives way in its middle (full text in the tooltip).
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert table.horizontalHeader().sectionResizeMode(1) == QHeaderView.ResizeMode.ResizeToContents
    assert table.item(0, 0).toolTip() == str(broken)
    table.cellDoubleClicked.emit(0, 1)
    assert revealed == [str(broken)]


def test_leakage_between_splits_is_listed(qtbot, screen, app_state, make_class_folders, tmp_path):
    # The generator paints image i of a class the same in every split: the same bytes in train and
    # test, the classic leak.
    root = make_class_folders(tmp_path / "xray", {"train": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}})
    open_and_wait(qtbot, screen, root)

    assert app_state.health.n_leakage >= 1
    table = screen.health_view.duplicates_table
    assert table.rowCount() >= 1 and table.item(0, 0).text() == "Yes"
    assert "leakage" in screen.health_view.warnings.text()


def test_a_missing_path_shows_an_error_and_nothing_crashes(qtbot, screen, app_state, tmp_path, message_boxes):
    open_and_wait(qtbot, screen, tmp_path / "no-such-folder")

    assert len(message_boxes.shown) == 1
    assert "does not exist" in message_boxes.texts()[0]
    assert app_state.dataset is None
    assert screen.pages.currentIndex() == 0  # still the drop hint
    assert not screen.progress_box.isVisibleTo(screen)


@pytest.mark.parametrize("broken", ["empty folder", "bad json"])
def test_a_failed_open_keeps_the_shown_datasets_path_and_names_the_failure(
    qtbot, screen, app_state, make_class_folders, tmp_path, message_boxes, broken
):
    good = make_class_folders(tmp_path / "good", {"a": 3, "b": 3})
    open_and_wait(qtbot, screen, good)
    if broken == "empty folder":
        bad = tmp_path / "empty"
        bad.mkdir()
        reason = "no images found"
    else:
        bad = tmp_path / "captions.json"
        bad.write_text("{not json", encoding="utf-8")
        reason = "not valid JSON"

    open_and_wait(qtbot, screen, bad)

    assert screen.path_label.text() == str(good)  # the path above the contents is the contents' path
    assert app_state.dataset_path == str(good) and len(app_state.dataset) == 6
    assert screen.error_label.isVisibleTo(screen)
    error = screen.error_label.text()
    assert str(bad) in error and reason in error and f"Still showing {good}" in error
    assert reason in message_boxes.texts()[0]

    open_and_wait(qtbot, screen, good)
    assert not screen.error_label.isVisibleTo(screen)


def test_json_with_unknown_keys_asks_for_them_and_reading_again_works(
    qtbot, screen, app_state, tmp_path, tiny_png, message_boxes
):
    folder = tmp_path / "pairs"
    entries = []
    for i in range(3):
        tiny_png(folder / f"scan_{i}.png")
        entries.append({"picture": f"scan_{i}.png", "report": f"finding {i}"})
    annotations = folder / "reports.json"
    annotations.write_text(json.dumps(entries), encoding="utf-8")

    open_and_wait(qtbot, screen, annotations)
    assert screen.keys_box.isVisibleTo(screen)
    assert "picture" in screen.keys_message.text() and "report" in screen.keys_message.text()
    assert app_state.dataset is None and not message_boxes.shown

    screen.image_key_edit.setText("picture")
    screen.caption_key_edit.setText("report")
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.retry_button.click()

    assert len(app_state.dataset) == 3 and app_state.dataset.has_captions
    assert not screen.keys_box.isVisibleTo(screen)
    assert "Image–caption pairs (JSON list)" in screen.format_label.text()


def test_clip_finetune_pairs_are_named_in_words(qtbot, screen, make_clip_finetune, tmp_path):
    root = make_clip_finetune(tmp_path / "pairs", {"train": 3, "val": 2})
    open_and_wait(qtbot, screen, root)

    assert "Image–caption pairs (CLIP-Finetune JSON)" in screen.format_label.text()
    assert "with captions" in screen.format_label.text()
    assert screen.health_view.chart_series == {"all": [3, 2]}  # images per split


def test_dropping_a_folder_opens_it(qtbot, screen, app_state, make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.dropEvent(event)
    assert len(app_state.dataset) == 4


def test_invalid_group_regex_is_explained_inline_and_not_stored(
    qtbot, screen, app_state, make_class_folders, tmp_path
):
    root = make_class_folders(tmp_path / "xray", {"normal": 4, "pneumonia": 4})
    open_and_wait(qtbot, screen, root)
    panel = screen.split_panel

    panel.group_regex.setText("(P\\d+")
    assert not panel.error.isHidden()
    assert "Invalid group pattern" in panel.error.text()
    assert not panel.apply_button.isEnabled()
    assert app_state.split_settings["group_regex"] is None

    panel.group_regex.setText(r"^([a-z]+)_")
    qtbot.waitUntil(lambda: "groups found" in panel.group_info.text(), timeout=WAIT_MS)
    assert panel.group_info.text().startswith("2 groups found in 8 of 8 images")
    assert panel.error.isHidden()
    assert app_state.split_settings["group_regex"] == r"^([a-z]+)_"


def test_apply_previews_split_counts_and_stores_the_settings(
    qtbot, screen, app_state, make_class_folders, tmp_path
):
    root = make_class_folders(tmp_path / "xray", {"normal": 5, "pneumonia": 5})
    open_and_wait(qtbot, screen, root)
    panel = screen.split_panel
    assert "no split folders" in panel.situation.text()

    panel.val_fraction.setValue(0.2)
    panel.test_fraction.setValue(0.2)
    panel.seed.setValue(7)
    with qtbot.waitSignal(screen.preview_finished, timeout=WAIT_MS):
        panel.apply_button.click()

    assert "<b>6</b>" in panel.result.text()  # 10 images: 6 train, 2 val, 2 test
    assert app_state.split_settings == {
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "seed": 7,
        "group_regex": None,
    }


def test_existing_split_folders_are_explained(qtbot, screen, make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "xray", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    open_and_wait(qtbot, screen, root)
    assert "own splits (train, val)" in screen.split_panel.situation.text()
    assert "fractions are not used" in screen.split_panel.situation.text()


def test_screen_module_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; import clipstudio.gui.screens.data_screen, clipstudio.gui.screens.model_screen; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cancelling_the_health_check_keeps_the_dataset_open(
    qtbot, screen, app_state, make_class_folders, tmp_path, monkeypatch
):
    import time

    from clipstudio.engine.data import health

    def slow_report(dataset, *, callback, should_stop, **_kwargs):
        while not should_stop():  # a check that only ends when asked to
            time.sleep(0.01)
        return health.HealthReport(format=dataset.format, n_images=len(dataset), complete=False)

    monkeypatch.setattr(health, "health_report", slow_report)
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    with qtbot.waitSignal(app_state.dataset_changed, timeout=WAIT_MS):
        screen.open_dataset(str(root))
    assert screen.busy() and screen.cancel_button.isVisibleTo(screen)

    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.cancel_button.click()

    assert len(app_state.dataset) == 4 and app_state.health is None
    assert not screen.busy() and not screen.progress_box.isVisibleTo(screen)
    assert screen.thumbnails.model.rowCount() == 4


def test_first_run_offers_the_bundled_sample_in_one_click(qtbot, screen, app_state):
    assert screen.pages.currentIndex() == 0 and screen.sample_button.isVisibleTo(screen)
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.sample_button.click()
    assert app_state.dataset is not None and len(app_state.dataset) == 48
    assert app_state.dataset.class_names == ["normal", "pneumonia"]
    assert screen.pages.currentIndex() == 1
