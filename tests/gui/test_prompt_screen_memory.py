"""The prompts written for a dataset are kept (per dataset, in the app's data folder) and come back."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.data import load_dataset
from clipstudio.engine.prompt_store import prompts_file
from clipstudio.gui.screens.prompt_screen import PromptScreen
from clipstudio.gui.state import AppState
from clipstudio.gui.widgets.prompt_editor import COL_TEXTS

EDITED = "a chest X-ray showing {class_name}."


@pytest.fixture
def roots(make_class_folders, tmp_path):
    xrays = make_class_folders(tmp_path / "xrays", {"normal": 3, "pneumonia": 3})
    cells = make_class_folders(tmp_path / "cells", {"basophil": 3, "platelet": 3})
    return xrays, cells


def _screen(qtbot, state) -> PromptScreen:
    widget = PromptScreen(state)
    qtbot.addWidget(widget)
    return widget


def _open(state: AppState, root) -> None:
    state.set_dataset(load_dataset(root), str(root))


def _edit(qtbot, screen) -> None:
    """Type a template and a class's own text, as a user does (the editor publishes after a pause)."""
    screen.templates_edit.setPlainText(EDITED)
    screen.class_table.item(1, COL_TEXTS).setText("cloudy lungs")
    qtbot.waitUntil(lambda: screen.state.prompts.templates == [EDITED], timeout=5000)


def test_edits_and_saved_sets_come_back_after_switching_datasets(qtbot, roots):
    xrays, cells = roots
    state = AppState()
    _open(state, xrays)
    screen = _screen(qtbot, state)
    _edit(qtbot, screen)
    assert screen.save_as_set("chest")

    _open(state, cells)
    assert screen.saved_sets == {}  # the x-rays' sets are not the cells' sets
    _open(state, xrays)

    assert screen.editor.templates() == [EDITED]
    assert screen.editor.class_texts()["pneumonia"] == ["cloudy lungs"]
    assert list(screen.saved_sets) == ["chest"]
    assert state.prompts.templates == [EDITED]  # training uses them again too
    screen.shutdown()


def test_prompts_come_back_after_a_restart_from_a_readable_file(qtbot, roots):
    xrays, _cells = roots
    state = AppState()
    _open(state, xrays)
    screen = _screen(qtbot, state)
    _edit(qtbot, screen)
    screen.shutdown()  # quitting

    saved = json.loads(prompts_file(xrays).read_text(encoding="utf-8"))
    assert saved["active"]["templates"] == [EDITED]
    assert saved["active"]["class_texts"] == {"pneumonia": ["cloudy lungs"]}

    restarted = AppState()
    screen = _screen(qtbot, restarted)
    _open(restarted, xrays)
    assert screen.editor.templates() == [EDITED]
    assert restarted.prompts.class_texts == {"pneumonia": ["cloudy lungs"]}
    screen.shutdown()


def test_an_edit_typed_just_before_switching_is_kept_for_its_dataset(qtbot, roots):
    xrays, cells = roots
    state = AppState()
    _open(state, xrays)
    screen = _screen(qtbot, state)
    screen.templates_edit.setPlainText(EDITED)  # and at once, before the editor publishes it:
    _open(state, cells)
    _open(state, xrays)
    assert screen.editor.templates() == [EDITED]
    screen.shutdown()


def test_a_damaged_prompts_file_is_reported_and_the_dataset_still_opens(qtbot, roots):
    xrays, _cells = roots
    path = prompts_file(xrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{broken", encoding="utf-8")
    state = AppState()
    posted = []
    state.status_posted.connect(posted.append)
    screen = _screen(qtbot, state)
    _open(state, xrays)
    assert any("Couldn't restore the prompts" in line and path.name in line for line in posted)
    assert screen.class_table.rowCount() == 2
    screen.shutdown()
