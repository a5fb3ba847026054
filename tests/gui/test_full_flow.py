"""A new user's whole first session through the real window, on the bundled sample with a tiny model.

Open data (dropped on the window) -> evaluate and edit a prompt -> train, stop, resume -> the run
opens in Results, misclassified images through the confusion matrix -> a text query returns images.
The same driver, with the built-in model on BloodMNIST, makes docs/WALKTHROUGH.md.
"""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.storage.paths import samples_dir
from clipstudio.gui.walkthrough import Walkthrough, WalkthroughPlan


@pytest.mark.slow  # drives the full GUI flow
def test_new_user_flow_from_dropped_folder_to_text_search(qapp, main_window, worker_tracker, message_boxes,
                                                         tiny_clip_dir, tmp_path):
    shots = tmp_path / "shots"
    plan = WalkthroughPlan(
        data=str(samples_dir() / "chest_xray"),
        model=str(tiny_clip_dir),
        template="a chest x-ray of {class_name}.",
        epochs=100,  # ~500 tiny steps: on a quiet machine 12 epochs finished before Stop was pressed
        batch_size=8,
        img_size=0,
        train_before_stop_s=1.0,
        query="pneumonia",
        out=shots,
        size=(1200, 800),
        timeout_s=300,
    )
    report = Walkthrough(qapp, main_window, plan).run()

    assert [s["name"] for s in report.steps] == [
        "data_dropped", "zero_shot_default", "prompt_edited", "training_live", "stopped", "finished",
        "results", "confusion_cell", "search",
    ]
    for step in report.steps:
        assert (shots / step["screenshot"]).stat().st_size > 10_000, step["name"]
    steps = {s["name"]: s for s in report.steps}
    assert steps["data_dropped"]["images"] == 48 and steps["data_dropped"]["classes"] == 2
    assert main_window.state.prompts.templates == ["a chest x-ray of {class_name}."]
    assert steps["prompt_edited"]["accuracy"].endswith("%")
    assert "Resume continues from step" in steps["stopped"]["message"]
    assert steps["finished"]["message"] == "Finished."
    assert steps["finished"]["stayed_on_train"] and steps["finished"]["view_results"]
    run_dir = report.facts["run_dir"]
    run = json.loads((__import__("pathlib").Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    assert run.get("status", "completed") == "completed"
    assert steps["results"]["source"].startswith("Training run:")
    assert steps["confusion_cell"]["true"] != steps["confusion_cell"]["predicted"]
    assert steps["confusion_cell"]["shown"].startswith("Showing ")
    assert steps["search"]["hits"] > 0 and steps["search"]["model"].startswith("Training run:")
    assert not message_boxes.shown
    stalls = report.facts["gui_stall"]
    assert set(stalls) == {"model loading", "image encoding (zero-shot evaluation)", "training",
                           "scoring the run (Results)"}
    assert all(span["beats"] > 0 for span in stalls.values())
