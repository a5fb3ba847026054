"""Double-clicking an image in any grid opens it large, with its file name, label, prediction and top-5."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from clipstudio.gui.widgets.image_viewer import ImageInfo, ImageViewer
from clipstudio.gui.widgets.prediction_grid import PredictionGrid, Tile, TileGrid
from clipstudio.gui.widgets.thumbnail_grid import ThumbnailGrid, ThumbnailItem


def _double_click_first(qtbot, view) -> None:
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    rect = view.visualRect(view.model().index(0, 0))
    assert rect.isValid()
    # As a real double-click arrives: press and release, then the double-click (views need the press).
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


@pytest.fixture
def prediction(tiny_png, tmp_path):
    path = tiny_png(tmp_path / "blood_0001.png")
    return {
        "path": str(path),
        "true": "immature_granulocyte",
        "pred": "monocyte",
        "topk": [("monocyte", 0.52), ("immature_granulocyte", 0.31), ("neutrophil", 0.1),
                 ("basophil", 0.04), ("eosinophil", 0.02), ("lymphocyte", 0.01)],
    }


def test_double_clicking_a_prediction_shows_it_large_with_label_prediction_and_top5(qtbot, prediction):
    grid = PredictionGrid()
    qtbot.addWidget(grid)
    grid.set_predictions([prediction])
    _double_click_first(qtbot, grid)
    viewer = grid.viewer
    assert viewer is not None and viewer.isVisible()
    text = viewer.text.text()
    assert "blood_0001.png" in text and "immature_granulocyte" in text
    assert "<b>monocyte</b> (wrong)" in text
    assert "Top 5" in text and "eosinophil: 2.0%" in text and "lymphocyte" not in text  # five, not six
    assert viewer.image.pixmap().width() >= 8 * 8  # the 8 px image enlarged, not a thumbnail
    viewer.close()
    grid.shutdown()


def test_double_clicking_a_thumbnail_shows_its_class_and_split(qtbot, tiny_png, tmp_path):
    path = tiny_png(tmp_path / "cyst" / "a.png")
    grid = ThumbnailGrid()
    qtbot.addWidget(grid)
    grid.set_items([ThumbnailItem(str(path), class_name="cyst", split="train")])
    _double_click_first(qtbot, grid.view)
    assert grid.viewer is not None and grid.viewer.isVisible()
    text = grid.viewer.text.text()
    assert "a.png" in text and "cyst" in text and "train" in text
    assert grid.viewer.path_label.text() == str(path)
    grid.viewer.close()
    grid.shutdown()


def test_search_hits_open_with_their_score(qtbot, tiny_png, tmp_path):
    path = tiny_png(tmp_path / "hit.png")
    grid = TileGrid()
    qtbot.addWidget(grid)
    grid.set_tiles([Tile(str(path), lines=["#1   0.812", "cyst"], true="cyst",
                         details=["Rank: 1 of 12", "Similarity: 0.812"])])
    _double_click_first(qtbot, grid)
    text = grid.viewer.text.text()
    assert "Similarity" in text and "0.812" in text and "cyst" in text
    grid.viewer.close()
    grid.shutdown()


def test_an_unreadable_file_shows_why_instead_of_an_image(qtbot, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.show_image(ImageInfo(str(bad), label="normal"))
    assert "can't be shown" in viewer.image.text()
    assert "normal" in viewer.text.text()
    viewer.close()
