"""The CLI and the GUI report the same numbers for the same data, model and prompts."""

from __future__ import annotations

import json

import pytest

from clipstudio.cli.main import main
from clipstudio.engine.prompts import PromptSet
from clipstudio.gui.screens.prompt_screen import PromptScreen
from clipstudio.gui.screens.results_screen import ResultsScreen

SPLITS = {
    "train": {"blue": 3, "green": 3, "red": 3},
    "val": {"blue": 2, "green": 3, "red": 2},
    "test": {"blue": 4, "green": 2, "red": 3},
}
TEMPLATE = "a photo of {class_name}."


@pytest.fixture
def data(make_class_folders, tmp_path):
    return make_class_folders(tmp_path / "data", SPLITS)


@pytest.fixture
def state(data, state_with):
    app_state = state_with(data)
    app_state.set_prompts(PromptSet(name="gui", templates=[TEMPLATE]))
    return app_state


def _cli(data, model_dir, tmp_path, *extra) -> dict:
    out = tmp_path / f"cli{len(extra)}.json"
    argv = ["zeroshot", str(data), "--model", str(model_dir), "--device", "cpu", "--template", TEMPLATE,
            "--json", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _same_numbers(cli: dict, gui) -> None:
    gui = gui.to_dict()
    for key in ("n", "classes", "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "ci95"):
        assert cli[key] == gui[key], key


def test_results_screen_reports_what_clipstudio_zeroshot_reports(qtbot, state, data, tiny_clip_dir, tmp_path):
    cli = _cli(data, tiny_clip_dir, tmp_path)
    screen = ResultsScreen(state)
    qtbot.addWidget(screen)
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
    screen.shutdown()
    assert cli["split"] == "test" and cli["split_description"] == "'test' split, 9 images"
    assert "'test' split, 9 images" in screen.split_label.text()  # both say where the numbers come from
    _same_numbers(cli, blocker.args[0])


def test_prompts_screen_scores_validation_like_clipstudio_zeroshot_split_val(
    qtbot, state, data, tiny_clip_dir, tmp_path
):
    cli = _cli(data, tiny_clip_dir, tmp_path, "--split", "val")
    screen = PromptScreen(state)
    qtbot.addWidget(screen)
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
    screen.shutdown()
    assert "'val' split, 7 images" in screen.split_label.text()
    _same_numbers(cli, blocker.args[0])
