"""The embedding map: dots drawn as one image, redrawn only on zoom, nearest-dot hover, rectangle selection."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtWidgets import QStackedWidget, QWidget

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


def test_show_on_map_centres_the_view_on_the_image_with_the_whole_map_in_view(shown_map):
    shown_map.fit()
    (fx0, fx1), _ = shown_map.view_box.viewRange()
    row = int(np.argmin(shown_map.xy[:, 0]))  # at the map's left edge: centring it moves the map right
    point = QPointF(*shown_map.xy[row].tolist())

    shown_map.focus(row)

    centre = shown_map.view_box.sceneBoundingRect().center()
    at = shown_map.view_box.mapViewToScene(point)
    assert abs(at.x() - centre.x()) <= 1 and abs(at.y() - centre.y()) <= 1  # the image is in the middle
    ring = shown_map.focus_item.points()[0]
    assert shown_map.focus_item.mapToScene(ring.pos()) == at  # the target is drawn around it
    assert shown_map.marked_rows.tolist() == [row]
    (x0, x1), (y0, y1) = shown_map.view_box.viewRange()
    lo, hi = shown_map.xy.min(axis=0), shown_map.xy.max(axis=0)
    assert x0 <= lo[0] and hi[0] <= x1 and y0 <= lo[1] and hi[1] <= y1  # none of the map is cut off
    assert x1 - x0 <= 2.2 * (fx1 - fx0)  # and it is no smaller than it must be


def test_an_image_shown_while_the_map_is_hidden_is_centred_once_it_appears(qtbot):
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    other, shown = QWidget(), EmbeddingMap()
    stack.addWidget(other)
    stack.addWidget(shown)
    stack.resize(500, 700)
    stack.show()
    stack.setCurrentWidget(shown)
    rng = np.random.default_rng(0)
    xy = np.c_[rng.normal(0, 3, 900), rng.normal(0, 1, 900)].astype(np.float32)  # wide, as maps often are
    shown.set_points(xy, [f"/x/{i}.png" for i in range(len(xy))], lambda row: "")
    stack.setCurrentWidget(other)
    stack.resize(900, 600)  # the window changed while another screen was showing
    row = int(np.argmax(xy[:, 0]))

    shown.focus(row)  # what "Show on the map" from another screen does, then switches screens
    stack.setCurrentWidget(shown)
    qtbot.waitUntil(lambda: shown.view_box.width() > 800)

    (x0, x1), (y0, y1) = shown.view_box.viewRange()
    assert np.allclose([(x0 + x1) / 2, (y0 + y1) / 2], xy[row], atol=1e-3 * (x1 - x0))
    assert x0 <= xy[:, 0].min() and xy[:, 0].max() <= x1 and y0 <= xy[:, 1].min() and xy[:, 1].max() <= y1
    shown.shutdown()


def test_a_ringed_dot_is_drawn_over_the_dots_around_it():
    xy = np.array([[10.0, 10.0], [11.0, 10.0]], dtype=np.float32)  # overlapping dots
    groups = [PointGroup("a", "#00ff00", np.array([0])), PointGroup("b", "#0000ff", np.array([1]))]

    plain = rasterize_dots(xy, groups, np.zeros(0, np.int64), QRectF(0, 0, 20, 20), 20, 20)
    ringed = rasterize_dots(xy, groups, np.array([0]), QRectF(0, 0, 20, 20), 20, 20)

    assert rgba(plain, 10, 10) == (0, 0, 255, 255)  # the later group covers it unless it is chosen
    assert rgba(ringed, 10, 10) == (0, 255, 0, 255)  # chosen: its own colour in the middle of the ring
