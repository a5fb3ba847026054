"""The thumbnail grid: decodes only what is shown, filters by class and split, marks unreadable files."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from clipstudio.gui.thumbnails import THUMB_SIZE
from clipstudio.gui.widgets.thumbnail_grid import ThumbnailGrid, ThumbnailItem


class CountingDecoder:
    """A stand-in decoder: a flat 1x1 tile, and a record of every path it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: str, size: int):
        with self._lock:
            self.paths.append(path)
        return 1, 1, b"\x80\x80\x80"


def synthetic_items(n: int) -> list[ThumbnailItem]:
    return [
        ThumbnailItem(
            f"/data/img_{i:05d}.png",
            class_name="a" if i % 2 else "b",
            split="train" if i % 5 else "test",
            caption=f"image {i}",
        )
        for i in range(n)
    ]


def wait_until_laid_out(qtbot, grid: ThumbnailGrid) -> None:
    """The view lays out 10k tiles in batches (500 per event-loop turn); until the last batch is done
    the scroll range covers only the first ones, so "scroll to the bottom" would land mid-list."""
    last = grid.proxy.index(grid.proxy.rowCount() - 1, 0)
    qtbot.waitUntil(lambda: grid.view.visualRect(last).isValid(), timeout=10_000)


@pytest.fixture
def grid(qtbot):
    widget = ThumbnailGrid()
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


@pytest.fixture
def counting_grid(qtbot):
    decoder = CountingDecoder()
    widget = ThumbnailGrid(decode=decoder)
    widget.decoder = decoder
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


def test_only_visible_thumbnails_of_10k_images_are_decoded(qtbot, counting_grid):
    grid = counting_grid
    grid.set_items(synthetic_items(10_000))
    grid.resize(600, 400)
    grid.show()
    qtbot.waitExposed(grid)
    qtbot.waitUntil(lambda: bool(grid.decoder.paths) and grid.loader.pending() == 0, timeout=10_000)

    decoded = set(grid.decoder.paths)
    assert 0 < len(decoded) < 200
    assert "/data/img_00000.png" in decoded
    assert "/data/img_09999.png" not in decoded
    assert grid.loader.pixmap("/data/img_00000.png") is not None


def test_scrolling_to_the_end_decodes_the_last_images_not_the_middle(qtbot, counting_grid):
    grid = counting_grid
    grid.set_items(synthetic_items(10_000))
    grid.resize(600, 400)
    grid.show()
    qtbot.waitExposed(grid)
    qtbot.waitUntil(lambda: bool(grid.decoder.paths) and grid.loader.pending() == 0, timeout=10_000)
    wait_until_laid_out(qtbot, grid)

    grid.view.scrollToBottom()
    qtbot.waitUntil(
        lambda: "/data/img_09999.png" in grid.loader.requested and grid.loader.pending() == 0, timeout=10_000
    )
    assert len(set(grid.decoder.paths)) < 400
    assert "/data/img_05000.png" not in grid.decoder.paths


def test_filters_by_class_and_split(counting_grid):
    grid = counting_grid
    grid.set_items(synthetic_items(100))
    assert grid.visible_count() == 100
    assert [grid.class_combo.itemText(i) for i in range(grid.class_combo.count())] == ["All", "a", "b"]

    grid.set_filter(class_name="a")
    assert grid.visible_count() == 50
    grid.set_filter(class_name="a", split="test")
    assert grid.visible_count() == 10  # odd multiples of 5 below 100
    assert grid.count_label.text() == "10 of 100 images"

    grid.split_combo.setCurrentIndex(0)  # "All" from the combo, as a user would
    assert grid.visible_count() == 50
    grid.set_filter()
    assert grid.visible_count() == 100


def test_real_images_get_thumbnails_and_unreadable_files_a_clear_tile(qtbot, grid, tmp_path, tiny_png):
    good = tiny_png(tmp_path / "good.png", (200, 40, 40))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    grid.set_items(
        [
            ThumbnailItem(str(good), "normal", "train", "a red square"),
            ThumbnailItem(str(bad), "normal", "train"),
        ]
    )
    grid.resize(500, 300)
    grid.show()
    qtbot.waitUntil(
        lambda: grid.loader.pixmap(str(good)) is not None and grid.loader.error(str(bad)) is not None,
        timeout=10_000,
    )

    # A tiny 8 px image is scaled up to the tile size, not left as a dot.
    assert max(grid.model.pixmap(str(good)).width(), grid.model.pixmap(str(good)).height()) == THUMB_SIZE
    bad_tip = grid.model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    assert str(bad) in bad_tip and "Unreadable" in bad_tip


def test_tooltip_names_path_class_split_and_truncated_caption(counting_grid):
    grid = counting_grid
    caption = "opacity in the left lower lobe " * 20
    grid.set_items([ThumbnailItem("/data/x.png", "pneumonia", "val", caption)])
    tip = grid.model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "/data/x.png" in tip and "Class: pneumonia" in tip and "Split: val" in tip
    assert "Caption: opacity" in tip and tip.endswith("…") and len(tip) < 300
