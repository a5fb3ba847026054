"""The embedding map: dots drawn as one image, redrawn only on zoom, nearest-dot hover, rectangle selection."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF

from clipstudio.gui.widgets.embedding_map import (
    MARK_COLOR,
    REDRAW_PAUSE_MS,
    EmbeddingMap,
    PointGroup,
    category_groups,
    rasterize_dots,
    value_groups,
)


def rgba(image: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


def test_rasterized_dots_have_their_group_colour_and_later_groups_are_on_top():
    xy = np.array([[1.0, 1.0], [8.0, 8.0], [8.0, 8.0]], dtype=np.float32)
    groups = [PointGroup("a", "#ff0000", np.array([0, 1])), PointGroup("b", "#0000ff", np.array([2]))]

    image = rasterize_dots(xy, groups, np.zeros(0, np.int64), QRectF(0, 0, 10, 10), 10, 10)

    assert rgba(image, 1, 1) == (255, 0, 0, 255)
    assert rgba(image, 2, 1) == (255, 0, 0, 255)  # a dot is more than one pixel
    assert rgba(image, 8, 8) == (0, 0, 255, 255)  # the later group wins where dots overlap
    assert rgba(image, 5, 1)[3] == 0  # transparent between dots


def test_marked_dots_get_a_ring():
    xy = np.array([[10.0, 10.0]], dtype=np.float32)
    groups = [PointGroup("a", "#00ff00", np.array([0]))]

    image = rasterize_dots(xy, groups, np.array([0]), QRectF(0, 0, 20, 20), 20, 20)

    ring = tuple(int(MARK_COLOR[i:i + 2], 16) for i in (1, 3, 5)) + (255,)
    assert rgba(image, 14, 10) == ring and rgba(image, 10, 6) == ring
    assert rgba(image, 10, 10) == (0, 255, 0, 255)


def test_category_and_value_groups_cover_every_point():
    codes = np.array([0, 1, 1, -1])
    groups = category_groups(codes, ["x", "y"])
    assert [(g.name, g.rows.tolist()) for g in groups] == [("x", [0]), ("y", [1, 2]), ("none", [3])]
    values = np.array([0.1, 0.5, np.nan, 0.9], dtype=np.float32)
    binned = value_groups(values, bins=2)
    assert sorted(r for g in binned for r in g.rows.tolist()) == [0, 1, 2, 3]
    assert binned[-1].name == "no value" and binned[-1].rows.tolist() == [2]


@pytest.fixture
def shown_map(qtbot):
    widget = EmbeddingMap()
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    widget.show()
    qtbot.waitExposed(widget)
    rng = np.random.default_rng(0)
    xy = rng.normal(0, 1, (2000, 2)).astype(np.float32)
    widget.set_points(xy, [f"/x/{i}.png" for i in range(len(xy))], lambda row: f"image {row}")
    widget.wait_drawn()
    yield widget
    widget.shutdown()


def test_panning_moves_the_image_and_zooming_draws_it_again(qtbot, shown_map):
    assert shown_map.dots.image is not None and not shown_map.empty_label.isVisible()
    drawn = shown_map._generation
    (x0, x1), _ = shown_map.view_box.viewRange()

    shown_map.view_box.translateBy(x=0.1 * (x1 - x0), y=0)
    qtbot.wait(REDRAW_PAUSE_MS * 3)
    assert shown_map._generation == drawn

    shown_map.view_box.scaleBy((0.5, 0.5))
    qtbot.waitUntil(lambda: shown_map._generation > drawn, timeout=2000)


def test_nearest_dot_and_rectangle_selection(shown_map):
    row = 17
    assert shown_map.nearest_row(QPointF(*shown_map.xy[row].tolist())) == row
    far = shown_map.xy.max(axis=0) + 100
    assert shown_map.nearest_row(QPointF(*far.tolist())) == -1

    inside = shown_map.rows_in(QRectF(0, 0, 10, 10))
    assert inside.tolist() == np.flatnonzero((shown_map.xy >= 0).all(axis=1)).tolist()
