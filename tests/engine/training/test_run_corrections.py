"""A run folder records the dataset corrections it trained with, and eval says so."""

from __future__ import annotations

import csv

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.corrections import EXCLUDE, RELABEL, Correction, add_corrections
from clipstudio.engine.evaluation.before_after import compare_run
from clipstudio.engine.runs.layout import CORRECTIONS_FILE, read_run_info
from clipstudio.engine.training.trainer import Trainer


def test_a_run_on_a_corrected_dataset_keeps_its_corrections_and_eval_names_them(
    class_data, tiny_dual_dir, make_cfg
):
    left_out, relabelled = sorted((class_data / "red").iterdir())[:2]
    add_corrections(class_data, [Correction(str(left_out), EXCLUDE), Correction(str(relabelled), RELABEL, "green")])
    add_corrections(class_data, [Correction(str(class_data / "gone.png"), EXCLUDE)])  # not in the dataset

    result = Trainer(make_cfg(class_data, tiny_dual_dir, method="linear_probe", epochs=1)).fit()

    assert result.status == "completed", result.message
    with open(result.run_dir / CORRECTIONS_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [["path", "action", "label"], [str(left_out), EXCLUDE, ""], [str(relabelled), RELABEL, "green"]]
    assert read_run_info(result.run_dir)["corrections_applied"] == 2
    comparison = compare_run(result.run_dir, load_dataset(class_data), device="cpu")
    assert "trained with 2 corrections to the dataset" in comparison.after_label


def test_a_run_without_corrections_has_no_corrections_file(class_data, tiny_dual_dir, make_cfg):
    result = Trainer(make_cfg(class_data, tiny_dual_dir, method="linear_probe", epochs=1)).fit()

    assert result.status == "completed", result.message
    assert not (result.run_dir / CORRECTIONS_FILE).exists()
    assert "corrections_applied" not in read_run_info(result.run_dir)
    assert "trained with" not in compare_run(result.run_dir, load_dataset(class_data), device="cpu").after_label
