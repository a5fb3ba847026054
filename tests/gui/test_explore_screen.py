"""The Explore screen: the map, its hover and rectangle selection, the lists, and marking images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtWidgets import QLabel

from clipstudio.engine.data.corrections import EXCLUDE, RELABEL, Correction, read_corrections
from clipstudio.gui.screens.explore_screen import ExploreScreen
from clipstudio.gui.widgets.embedding_map import HOVER_INTERVAL_MS
from clipstudio.gui.widgets.explore_lists import CHANGE_COLUMN

WAIT_MS = 60_000
COUNTS = {"train": {"blue": 8, "green": 8, "red": 8}, "test": {"blue": 2, "green": 2, "red": 2}}


@pytest.fixture
def data_root(make_class_folders, tmp_path):
    # Plain squares (the test split's repeat the train split's colours: alike to the model, but not the
    # same picture), plus one textured picture saved in both splits: a copy across splits.
    root = make_class_folders(tmp_path / "data", COUNTS)
    noise = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "train" / "blue" / "noise.png")
    Image.fromarray(noise).save(root / "test" / "blue" / "noise_copy.png")
    return root


@pytest.fixture
def screen(qtbot, data_root, state_with):
    widget = ExploreScreen(state_with(data_root))
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    yield widget
    widget.shutdown()
    assert not widget.busy()


def analyse(qtbot, screen):
    with qtbot.waitSignals([screen.analysed, screen.duplicates_shown], timeout=WAIT_MS):
        screen.analyse()


def test_analyse_fills_the_map_and_every_list(qtbot, screen):
    analyse(qtbot, screen)

    n = len(screen.state.dataset)
    assert len(screen.map.xy) == n and np.isfinite(screen.map.xy).all()
    assert sum(g.rows.size for g in screen.map.groups) == n
    assert [g.name for g in screen.map.groups] == ["blue", "green", "red"]  # coloured by class
    assert screen.mistakes.model.rowCount() == n
    assert screen.outliers.model.rowCount() == n
    across = [r for r in screen.duplicates.model.rows if r.alert]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in across) == ["noise.png", "noise_copy.png"]
    assert "1 across splits" in screen.duplicates.count_label.text()


def test_duplicates_by_the_model_alone_include_look_alikes(qtbot, screen):
    analyse(qtbot, screen)
    confirmed = len(screen.duplicates.model.rows)

    with qtbot.waitSignal(screen.duplicates_shown, timeout=WAIT_MS):
        screen.same_picture_box.setChecked(False)

    assert len(screen.duplicates.model.rows) > confirmed
    with qtbot.waitSignal(screen.duplicates_shown, timeout=WAIT_MS):  # the slider searches again
        screen.threshold_slider.setValue(80)
    assert screen.threshold_label.text() == "0.80"
    assert len(screen.duplicates.model.rows) >= confirmed


def test_colouring_by_split_and_label_quality(qtbot, screen):
    analyse(qtbot, screen)

    screen.colour_combo.setCurrentIndex(screen.colour_combo.findData("split"))
    assert [g.name for g in screen.map.groups] == ["test", "train"]
    screen.colour_combo.setCurrentIndex(screen.colour_combo.findData("quality"))
    assert sum(g.rows.size for g in screen.map.groups) == len(screen.map.xy)
    assert not screen.colour_combo.model().item(screen.colour_combo.findData("loss")).isEnabled()


def test_hovering_a_dot_shows_its_thumbnail_and_file(qtbot, screen):
    analyse(qtbot, screen)
    view_box = screen.map.view_box
    row = 3
    scene_pos = view_box.mapViewToScene(QPointF(*screen.map.xy[row].tolist()))

    screen.map.plot.scene().sigMouseMoved.emit(scene_pos)
    qtbot.waitUntil(lambda: screen.map.hovered_row >= 0, timeout=HOVER_INTERVAL_MS * 50)

    hovered = screen.map.hovered_row
    assert np.allclose(screen.map.xy[hovered], screen.map.xy[row], atol=1e-3)  # it or a dot on top of it
    assert screen.map.preview.isVisible()
    name = screen.analysis.emb.paths[hovered].rsplit("/", 1)[-1]
    assert name in screen.map.preview.text.text()
    qtbot.waitUntil(lambda: screen.map.preview.image.pixmap() is not None
                    and not screen.map.preview.image.pixmap().isNull(), timeout=10_000)


def test_rectangle_selection_opens_the_images_in_the_grid(qtbot, screen):
    analyse(qtbot, screen)
    xy = screen.map.xy
    left = xy[:, 0] <= np.median(xy[:, 0])
    rect = QRectF(xy[:, 0].min() - 1, xy[:, 1].min() - 1, np.median(xy[:, 0]) - xy[:, 0].min() + 1,
                  xy[:, 1].max() - xy[:, 1].min() + 2)

    screen.map._on_view_box_selected(rect)

    assert screen.tabs.currentWidget() is screen.selection_grid
    assert screen.selection_grid.model.rowCount() == int(left.sum())
    assert sorted(screen.chosen_rows()) == np.flatnonzero(left).tolist()
    assert screen.mark_bar.exclude_button.isEnabled()
    assert f"{int(left.sum())} images chosen" in screen.mark_bar.chosen_label.text()


def test_marking_writes_corrections_and_undo_removes_them(qtbot, screen):
    analyse(qtbot, screen)
    screen.tabs.setCurrentWidget(screen.mistakes)
    table = screen.mistakes
    table.view.selectRow(0)
    first = table.model.rows[0]

    with qtbot.waitSignal(screen.state.corrections_changed):
        screen.mark_bar.exclude_button.click()
    assert read_corrections(screen.state.dataset_path) == [Correction(first.path, EXCLUDE)]
    assert table.model.data(table.model.index(0, CHANGE_COLUMN)) == "left out"

    table.view.selectRow(1)
    second = table.model.rows[1]
    assert screen.mark_bar.class_combo.currentText() == second.cells[1]  # the suggested class is offered
    screen.mark_bar.class_combo.setCurrentText("red")
    screen.mark_bar.relabel_button.click()
    assert read_corrections(screen.state.dataset_path)[-1] == Correction(second.path, RELABEL, "red")

    screen.mark_bar.undo_button.click()
    assert read_corrections(screen.state.dataset_path) == [Correction(first.path, EXCLUDE)]


@pytest.mark.slow
def test_marking_an_image_shows_on_the_data_screen(qtbot, main_window, data_root, tiny_model):
    data = main_window.screen_for("data")
    with qtbot.waitSignal(data.load_finished, timeout=WAIT_MS):
        data.open_dataset(str(data_root))
    main_window.state.set_model(tiny_model, "tiny")
    main_window.show_screen("explore")
    screen = main_window.screen_for("explore")
    analyse(qtbot, screen)
    n = len(main_window.state.dataset)

    screen.tabs.setCurrentWidget(screen.outliers)
    screen.outliers.view.selectRow(0)
    with qtbot.waitSignal(data.load_finished, timeout=WAIT_MS):
        screen.mark_bar.exclude_button.click()

    assert len(main_window.state.dataset) == n - 1
    assert "1 correction applied" in data.corrections_bar.label.text()
    assert screen.analysis is not None  # the analysis survives the dataset being read again
    assert "Analyse again" in screen.note_label.text()

    with qtbot.waitSignal(data.load_finished, timeout=WAIT_MS):
        screen.mark_bar.undo_button.click()
    assert len(main_window.state.dataset) == n
    assert not data.corrections_bar.isVisibleTo(data)
    assert screen.note_label.isHidden()


@pytest.mark.slow
def test_hardest_training_images_of_a_run_are_listed_and_colour_the_map(qtbot, trained, state_with):
    state = state_with(trained["data"])
    state.set_run(str(trained["probe"]))
    screen = ExploreScreen(state)
    qtbot.addWidget(screen)
    try:
        analyse(qtbot, screen)
        assert screen.losses_button.isEnabled()
        with qtbot.waitSignal(screen.losses_shown, timeout=WAIT_MS):
            screen.losses_button.click()

        rows = screen.hardest.model.rows
        assert rows
        losses = [float(r.cells[2]) for r in rows]
        assert losses == sorted(losses, reverse=True)
        loss_item = screen.colour_combo.model().item(screen.colour_combo.findData("loss"))
        assert loss_item.isEnabled()
        screen.colour_combo.setCurrentIndex(screen.colour_combo.findData("loss"))
        assert sum(g.rows.size for g in screen.map.groups) == len(screen.map.xy)
    finally:
        screen.shutdown()


def test_the_screens_jargon_is_explained(screen):
    links = " ".join(label.text() for label in screen.findChildren(QLabel))
    for key in ("label_quality", "near_duplicate", "outlier_score"):
        assert f'href="{key}"' in links
