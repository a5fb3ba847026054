"""The prediction grid's tile captions: short class names in full, long ones elided in the middle."""

from __future__ import annotations

from PySide6.QtGui import QFontMetrics

from clipstudio.gui.widgets.prediction_grid import PredictionGrid, captions, prediction_tile

BLOOD_CLASSES = ["basophil", "eosinophil", "erythroblast", "lymphocyte", "monocyte", "neutrophil", "platelet"]


def _prediction(true: str, pred: str, plausible: list[str] | None = None) -> dict:
    p = {"path": f"/images/{true}.png", "true": true, "pred": pred, "topk": [(pred, 1.0), (true, 0.0)]}
    if plausible is not None:
        p["set"] = plausible
    return p


def _shown(grid: PredictionGrid, prediction: dict) -> list[str]:
    """The caption lines as the grid paints them."""
    return captions(prediction_tile(prediction), QFontMetrics(grid.font()), grid.delegate.caption_width())


def test_short_class_names_are_shown_in_full_even_with_a_prediction_set(qtbot):
    grid = PredictionGrid()
    qtbot.addWidget(grid)
    for true in BLOOD_CLASSES:
        for pred in BLOOD_CLASSES:
            shown = _shown(grid, _prediction(true, pred, plausible=BLOOD_CLASSES))
            assert shown == [f"true: {true}", f"pred: {pred}", "100% · set of 7"]


def test_a_long_class_name_is_elided_in_the_middle_and_named_in_full_in_the_tooltip(qtbot):
    grid = PredictionGrid()
    qtbot.addWidget(grid)
    long_name = "immature_granulocyte_with_a_very_long_name"
    prediction = _prediction("basophil", long_name, plausible=[long_name, "basophil"])
    true_line, pred_line, numbers = _shown(grid, prediction)
    assert true_line == "true: basophil" and numbers == "100% · set of 2"
    # Elided in the middle: the start and the end of the name, and it fits (how much fits is the font's business).
    head, _, tail = pred_line.removeprefix("pred: ").partition("…")
    assert head and tail and long_name.startswith(head) and long_name.endswith(tail)
    assert QFontMetrics(grid.font()).horizontalAdvance(pred_line) <= grid.delegate.caption_width()
    assert f"Predicted: {long_name}" in prediction_tile(prediction).tooltip
