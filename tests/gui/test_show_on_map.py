"""'Show on the map': an image chosen in the Data, Results or Retrieval screen's grid is shown on the
Explore screen's map (after an offer to analyse when there is no map yet)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from clipstudio.gui.screens.explore_screen import ExploreScreen
from clipstudio.gui.screens.results_screen import ResultsScreen
from clipstudio.gui.screens.retrieval_screen import RetrievalScreen
from clipstudio.gui.widgets.prediction_grid import Tile
from clipstudio.gui.widgets.show_on_map import SHOW_ON_MAP, SHOW_ON_MAP_KEYS

WAIT_MS = 60_000


@pytest.fixture
def data_root(make_class_folders, tmp_path):
    return make_class_folders(tmp_path / "data", {"blue": 6, "green": 6, "red": 6})


def _action(view):
    return next(a for a in view.actions() if a.text() == SHOW_ON_MAP)


def test_the_map_offers_analyse_then_rings_and_centres_the_image(qtbot, state_with, data_root):
    state = state_with(data_root)
    screen = ExploreScreen(state)
    qtbot.addWidget(screen)
    screen.resize(1200, 800)
    screen.show()
    path = str(state.dataset.samples[7].path)

    with qtbot.waitSignal(state.screen_requested) as asked:
        state.request_show_on_map(path)

    assert asked.args == ["explore"]
    assert "no map of this dataset yet" in screen.note_label.text() and "Analyse now" in screen.note_label.text()
    with qtbot.waitSignal(screen.analysed, timeout=WAIT_MS):
        screen.note_label.linkActivated.emit("analyse")  # the note's "Analyse now" link
        assert "will be shown on the map as soon as it is made" in screen.note_label.text()
    row = screen.analysis.emb.paths.index(path)
    assert screen.map.marked_rows.tolist() == [row] and screen.map.focused_row == row
    assert screen.map.focus_item.data["x"].tolist() == [screen.map.xy[row, 0]]
    assert screen.tabs.currentWidget() is screen.selection_grid
    assert [i.path for i in screen.selection_grid.model.items()] == [path]
    assert screen.selection_grid.count_label.text() == "1 image"  # not "1 images"
    assert screen.mark_bar.chosen_label.text() == "1 image chosen"
    (x0, x1), (y0, y1) = screen.map.view_box.viewRange()
    assert np.allclose([(x0 + x1) / 2, (y0 + y1) / 2], screen.map.xy[row], atol=1e-3 * (x1 - x0))
    assert screen.note_label.isHidden()

    screen.show_on_map(str(data_root / "elsewhere.png"))
    assert "is not on this map" in screen.note_label.text()
    screen.map.set_marked(np.array([0, 1]))  # choosing other images drops the target
    assert screen.map.focused_row == -1 and not len(screen.map.focus_item.data)
    screen.shutdown()


def test_the_data_screens_thumbnails_show_an_image_on_the_map(qtbot, main_window, data_root, tiny_model):
    data = main_window.screen_for("data")
    with qtbot.waitSignal(data.load_finished, timeout=WAIT_MS):
        data.open_dataset(str(data_root))
    main_window.state.set_model(tiny_model, "tiny")
    explore = main_window.screen_for("explore")
    with qtbot.waitSignal(explore.analysed, timeout=WAIT_MS):
        explore.analyse()
    grid = data.thumbnails
    index = grid.proxy.index(4, 0)
    rect = grid.view.visualRect(index)

    menu = grid.show_on_map.menu_at(rect.center())  # what a right-click on the tile opens
    assert [a.text() for a in menu.actions()] == [SHOW_ON_MAP]
    assert _action(grid.view).shortcut().toString() == SHOW_ON_MAP_KEYS
    assert grid.view.currentIndex() == index
    menu.actions()[0].trigger()

    path = grid.model.item(grid.proxy.mapToSource(index).row()).path
    assert main_window.current_screen_key() == "explore"
    assert [explore.analysis.emb.paths[r] for r in explore.map.marked_rows] == [path]


def test_results_and_retrieval_grids_ask_for_the_map(qtbot, state_with, data_root):
    state = state_with(data_root)
    results, retrieval = ResultsScreen(state), RetrievalScreen(state)
    for screen in (results, retrieval):
        qtbot.addWidget(screen)
    path = str(state.dataset.samples[0].path)
    results.grid.set_predictions([{"path": path, "true": "blue", "pred": "red", "topk": [("red", 0.6)]}])
    retrieval.grid.set_tiles([Tile(path=path, lines=["#1"])])

    for grid in (results.grid, retrieval.grid):
        grid.setCurrentIndex(grid.model().index(0, 0))
        with qtbot.waitSignal(state.show_on_map_requested) as asked:
            _action(grid).trigger()
        assert asked.args == [path]
        assert grid.contextMenuPolicy() == Qt.ContextMenuPolicy.CustomContextMenu
    for screen in (results, retrieval):
        screen.shutdown()
