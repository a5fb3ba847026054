"""Scores in words: intervals that collapse, chance levels, counts that agree."""

from __future__ import annotations

from types import SimpleNamespace

from clipstudio.engine.data.dataset import Problem
from clipstudio.gui.score_text import chance_text, interval_text, scored_text
from clipstudio.gui.screens.results_screen import ResultsScreen


def test_a_collapsed_interval_is_called_undefined_not_shown_as_a_range():
    assert interval_text([0.333, 0.333], 3) == "  (95% CI undefined: 3 images are too few)"
    assert "undefined" in interval_text([0.0, 0.0], 500)
    assert interval_text([0.25, 0.5], 40) == "  (95% CI 25.0 % – 50.0 %)"
    assert interval_text(None, 40) == ""


def test_chance_level_names_one_over_classes_and_the_majority_rate():
    text = chance_text({"normal": 30, "pneumonia": 90})
    assert "guessing at random among 2 classes scores 50.0 %" in text
    assert "always answering “pneumonia” (the most common class, 75.0 % of these images) scores 75.0 % accuracy" in text
    assert text.endswith("and 50.0 % balanced accuracy.")
    assert chance_text({}) == ""
    assert chance_text({"a": 5, "b": 5, "c": 5, "d": 5}) == (
        "For comparison: the 4 classes are equally common here, so guessing scores 25.0 % "
        "(accuracy and balanced accuracy).")


def test_scored_count_agrees_with_the_image_count_or_says_why_not():
    result = SimpleNamespace(n=15, problems=[Problem("/data/val/a/broken.png", "not an image file")])
    assert scored_text(result, 16) == ("Scored 15 of the 16 images; 1 could not be read "
                                       "(broken.png: not an image file).")
    assert scored_text(SimpleNamespace(n=16, problems=[]), 16) == "Scored 16 images."


def test_the_results_screen_shows_the_chance_level_beside_its_accuracy(qtbot, make_class_folders, tmp_path,
                                                                         state_with):
    state = state_with(make_class_folders(tmp_path / "data", {"blue": 2, "green": 2, "red": 4}))
    screen = ResultsScreen(state)
    qtbot.addWidget(screen)
    with qtbot.waitSignal(screen.evaluated, timeout=30_000):
        screen.evaluate()
    screen.shutdown()
    summary = screen.summary_label.text()
    assert "guessing at random among 3 classes scores 33.3 %" in summary
    assert "always answering “red” (the most common class, 50.0 % of these images)" in summary
    assert "whole dataset" in screen.split_label.text()  # which images the numbers come from
