"""The Data screen shows "N corrections applied", and undoing them reads the dataset again."""

from __future__ import annotations

import csv

import pytest

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.corrections import EXCLUDE, RELABEL, Correction, add_corrections, corrections_file
from clipstudio.gui.screens.data_screen import DataScreen
from clipstudio.gui.widgets import corrections_view

WAIT_MS = 30_000


@pytest.fixture
def screen(open_screen, app_state):
    widget = open_screen(DataScreen, app_state, size=(1200, 800))
    yield widget
    if widget.corrections_dialog is not None:
        widget.corrections_dialog.close()


def open_and_wait(qtbot, screen, path):
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        screen.open_dataset(str(path))


def test_corrections_are_counted_and_undone_one_then_all(qtbot, screen, app_state, make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "xray", {"normal": 4, "pneumonia": 2})
    open_and_wait(qtbot, screen, root)
    assert not screen.corrections_bar.isVisibleTo(screen)
    paths = [str(p) for p in app_state.dataset.paths]

    add_corrections(root, [Correction(paths[0], EXCLUDE), Correction(paths[1], RELABEL, "pneumonia")])
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        app_state.notify_corrections_changed()

    assert screen.corrections_bar.isVisibleTo(screen)
    assert "2 corrections applied" in screen.corrections_bar.label.text()
    assert len(app_state.dataset) == 5 and app_state.dataset.class_counts() == {"normal": 2, "pneumonia": 3}
    assert screen.thumbnails.model.rowCount() == 5

    screen.corrections_bar.review_button.click()
    dialog = screen.corrections_dialog
    assert dialog.table.rowCount() == 2 and dialog.table.item(0, 1).text() == "left out"
    assert not dialog.undo_button.isEnabled()  # nothing chosen yet
    dialog.table.selectRow(0)
    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        dialog.undo_button.click()
    assert "1 correction applied" in screen.corrections_bar.label.text()
    assert len(app_state.dataset) == 6 and dialog.table.rowCount() == 1

    with qtbot.waitSignal(screen.load_finished, timeout=WAIT_MS):
        dialog.undo_all_button.click()
    assert not screen.corrections_bar.isVisibleTo(screen)
    assert app_state.dataset.class_counts() == {"normal": 4, "pneumonia": 2}
    assert not corrections_file(root).exists()


def test_export_cleaned_list_writes_the_corrected_dataset(
    qtbot, screen, app_state, make_class_folders, tmp_path, monkeypatch
):
    root = make_class_folders(tmp_path / "xray", {"normal": 3, "pneumonia": 2})
    paths = [str(p) for p in load_dataset(root).paths]
    add_corrections(root, [Correction(paths[0], EXCLUDE)])
    open_and_wait(qtbot, screen, root)
    target = tmp_path / "cleaned.csv"
    monkeypatch.setattr(corrections_view.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))

    screen.corrections_bar.review_button.click()
    screen.corrections_dialog.export_button.click()

    with open(target, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == paths[1:]
    assert {r["label"] for r in rows} == {"normal", "pneumonia"}


def test_a_bad_corrections_file_is_named_and_the_dataset_opens(qtbot, screen, app_state, make_class_folders, tmp_path):
    root = make_class_folders(tmp_path / "xray", {"normal": 2, "pneumonia": 2})
    target = corrections_file(root)
    target.parent.mkdir(parents=True)
    target.write_text("garbage\n", encoding="utf-8")

    open_and_wait(qtbot, screen, root)

    assert len(app_state.dataset) == 4
    assert screen.corrections_bar.isVisibleTo(screen)
    assert "not applied" in screen.corrections_bar.label.text() and target.name in screen.corrections_bar.label.text()
