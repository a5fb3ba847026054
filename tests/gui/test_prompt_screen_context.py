"""The Prompts screen shows only the open dataset's state, and every score with its chance level and split."""

from __future__ import annotations

import pytest

from clipstudio.engine.data import load_dataset
from clipstudio.gui.screens.prompt_screen import PromptScreen


@pytest.fixture
def roots(make_class_folders, tmp_path):
    cells = make_class_folders(tmp_path / "cells", {"train": {"red": 3, "green": 3, "blue": 3},
                                                    "val": {"red": 2, "green": 2, "blue": 4}})
    xrays = make_class_folders(tmp_path / "xrays", {"train": {"normal": 3, "pneumonia": 3},
                                                    "val": {"normal": 3, "pneumonia": 3}})
    return cells, xrays


@pytest.fixture
def screen(open_screen, roots, state_with):
    return open_screen(PromptScreen, state_with(roots[0]))


def _chart_classes(screen) -> list[str]:
    levels = screen.recall_plot.getAxis("left")._tickLevels  # the class names set on the chart's axis
    return [name for _y, name in levels[0]] if levels else []


def _evaluate(qtbot, screen):
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
        assert "Press Evaluate" not in screen.ci_label.text()  # scoring has started: don't ask for it
        assert "Scoring" in screen.ci_label.text()
    return blocker.args[0]


def test_every_score_comes_with_its_chance_level_and_split(qtbot, screen):
    _evaluate(qtbot, screen)
    assert "accuracy on the validation images" in screen.ci_label.text()
    assert "never scored on the test images" in screen.split_label.text()
    assert "'val' split, 8 images" in screen.split_label.text()
    chance = screen.chance_label.text()
    assert "guessing at random among 3 classes scores 33.3 %" in chance
    assert "always answering “blue” (the most common class, 50.0 % of these images) scores 50.0 %" in chance
    assert screen.progress_label.text() == "Scored 8 images."


def test_switching_datasets_clears_the_old_scores_and_charts_the_new_classes(qtbot, screen, roots):
    _evaluate(qtbot, screen)
    assert sorted(_chart_classes(screen)) == ["blue", "green", "red"]

    screen.state.set_dataset(load_dataset(roots[1]), str(roots[1]))

    assert sorted(_chart_classes(screen)) == ["normal", "pneumonia"]
    assert screen.accuracy_label.text() == "" and screen.chance_label.text() == ""
    assert screen.progress_label.text() == "" and screen.split_label.text() == ""
    assert "Press Evaluate" in screen.ci_label.text()


def test_scores_of_a_dataset_closed_while_scoring_are_dropped(qtbot, screen, roots, worker_tracker):
    screen.evaluate()  # scoring the cells...
    screen.state.set_dataset(load_dataset(roots[1]), str(roots[1]))  # ...when the x-rays are opened
    assert not worker_tracker.wait_all(30)
    qtbot.wait(50)  # let the finished job's queued signals arrive
    assert screen.last_result is None
    assert sorted(_chart_classes(screen)) == ["normal", "pneumonia"]
    assert screen.accuracy_label.text() == ""
