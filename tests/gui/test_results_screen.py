"""The Results screen: prediction grid, filters, confusion matrix, CSV export, and a run's before/after."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import QPoint, Qt

from clipstudio.engine.data.health import health_report
from clipstudio.gui.screens.results_screen import ResultsScreen
from clipstudio.gui.state import AppState

CLASSES = {"blue": 4, "green": 4, "red": 4}


@pytest.fixture
def state(make_class_folders, tmp_path, state_with):
    return state_with(make_class_folders(tmp_path / "data", CLASSES))


@pytest.fixture
def screen(open_screen, state):
    return open_screen(ResultsScreen, state)


def _evaluate(qtbot, screen):
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
    return blocker.args[0]


def test_grid_shows_one_tile_per_image_with_verdicts(qtbot, screen):
    result = _evaluate(qtbot, screen)
    assert result.n == 12
    assert "whole dataset" in screen.split_label.text()
    tiles = screen.grid.visible_tiles()
    assert len(tiles) == 12
    assert sorted(t.path for t in tiles) == sorted(p["path"] for p in result.predictions)
    assert all(t.correct == (t.true == t.pred) for t in tiles)
    assert "Top 3" in tiles[0].tooltip and "%" in tiles[0].tooltip
    assert screen.metrics_table.rowCount() == 3
    assert "95% CI" in screen.summary_label.text()


def test_thumbnails_decode_in_the_background(qtbot, screen):
    _evaluate(qtbot, screen)
    screen.resize(900, 600)
    screen.show()
    path = screen.grid.visible_tiles()[0].path
    qtbot.waitUntil(lambda: screen.grid.loader.pixmap(path) is not None, timeout=10_000)
    assert not screen.grid.loader.pixmap(path).isNull()


def test_misclassified_filter_count_equals_confusion_off_diagonal(qtbot, screen):
    result = _evaluate(qtbot, screen)
    matrix = result.confusion_matrix
    off_diagonal = sum(matrix[r][c] for r in range(3) for c in range(3) if r != c)
    screen.misclassified_check.setChecked(True)
    assert len(screen.grid.visible_tiles()) == off_diagonal
    assert all(not t.correct for t in screen.grid.visible_tiles())
    screen.misclassified_check.setChecked(False)
    assert len(screen.grid.visible_tiles()) == 12


def test_clicking_a_confusion_cell_filters_the_grid_and_again_clears(qtbot, screen):
    result = _evaluate(qtbot, screen)
    screen.resize(1200, 800)
    screen.show()
    qtbot.waitExposed(screen)
    matrix = screen.matrix
    row, col = next((r, c) for r in range(3) for c in range(3) if result.confusion_matrix[r][c])
    centre = matrix.cell_rect(row, col).center()
    qtbot.mouseClick(matrix, Qt.MouseButton.LeftButton, pos=QPoint(centre.x(), centre.y()))
    tiles = screen.grid.visible_tiles()
    assert len(tiles) == result.confusion_matrix[row][col]
    names = result.class_names
    assert all(t.true == names[row] and t.pred == names[col] for t in tiles)
    assert names[row] in screen.cell_label.text()

    qtbot.mouseClick(matrix, Qt.MouseButton.LeftButton, pos=QPoint(centre.x(), centre.y()))
    assert len(screen.grid.visible_tiles()) == 12
    assert matrix.selected_cell is None


def test_class_filter_shows_only_that_true_class(qtbot, screen):
    _evaluate(qtbot, screen)
    screen.class_combo.setCurrentIndex(screen.class_combo.findData("green"))
    tiles = screen.grid.visible_tiles()
    assert len(tiles) == 4 and {t.true for t in tiles} == {"green"}


def test_csv_export_lists_every_prediction(qtbot, screen, tmp_path):
    _evaluate(qtbot, screen)
    out = tmp_path / "export" / "predictions.csv"
    assert screen.export_csv(str(out))
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert list(rows[0])[:6] == ["path", "true", "predicted", "correct", "top1_class", "top1_probability"]
    by_path = {p["path"]: p for p in screen.shown_predictions}
    for row in rows:
        p = by_path[row["path"]]  # what the grid shows: calibrated when a temperature was fitted
        assert (row["true"], row["predicted"]) == (p["true"], p["pred"])
        assert row["correct"] == ("yes" if p["true"] == p["pred"] else "no")
        assert row["top1_class"] == p["pred"]
        assert float(row["top1_probability"]) == pytest.approx(p["topk"][0][1], abs=1e-6)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left behind


def test_without_dataset_the_screen_says_so(qtbot):
    widget = ResultsScreen(AppState())
    qtbot.addWidget(widget)
    widget.evaluate()
    assert "Open a dataset on the Data screen first" in widget.banner.label.text()
    assert not widget.busy()
    assert not widget.tabs.isTabEnabled(widget.tabs.indexOf(widget.wise))  # WiSE-FT needs a run
    widget.shutdown()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_clip_dir):
    """A one-epoch fine-tuning run of the tiny CLIP on three colour classes."""
    from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
    from clipstudio.engine.training.trainer import Trainer
    from tests.fixtures_data import _PALETTE, write_png

    root = tmp_path_factory.mktemp("results_run")
    for c, name in enumerate(CLASSES):
        for i in range(4):
            write_png(root / "data" / name / f"{name}_{i}.png", tuple(v - 10 * i for v in _PALETTE[c]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSTUDIO_HOME", str(root / "home"))
        mp.setenv("CLIPSTUDIO_CACHE_DIR", str(root / "home" / "cache"))
        cfg = TrainConfig(
            data=DataConfig(path=str(root / "data")),
            model=ModelConfig(spec=str(tiny_clip_dir), device="cpu"),
            output=str(root / "run"),
            epochs=1,
            batch_size=6,
            learning_rate=1e-3,
            warmup_steps=0,
            amp=False,
        )
        assert Trainer(cfg).fit().status == "completed"
    return root / "run"


@pytest.mark.slow
def test_run_before_after_and_wise_slider(qtbot, screen, state, run_dir):
    state.set_run(str(run_dir))
    screen.source_combo.setCurrentIndex(screen.source_combo.findData("run"))
    assert screen.tabs.isTabEnabled(screen.tabs.indexOf(screen.wise))
    after = _evaluate(qtbot, screen)
    assert after.n == 12

    with qtbot.waitSignal(screen.compared, timeout=60_000) as blocker:
        screen.compare_before_after()
    payload = blocker.args[0]
    assert payload["after"]["accuracy"] == pytest.approx(after.accuracy)
    assert screen.compare_table.rowCount() == 2 + 3
    assert screen.compare_table.item(0, 3).text().endswith("pp")
    # The paired comparison on the same images, as `clipstudio eval` reports it.
    paired = payload["paired"]
    assert paired["n"] == 12 and paired["accuracy"]["a"] == pytest.approx(payload["before"]["accuracy"])
    assert "McNemar" in screen.compare_label.text() and "points" in screen.compare_label.text()

    with qtbot.waitSignal(screen.evaluated, timeout=60_000) as blocker:
        screen.alpha_slider.setValue(0)
    assert "α = 0.0" in screen.split_label.text()
    assert blocker.args[0].accuracy == pytest.approx(payload["before"]["accuracy"])


@pytest.mark.slow
def test_choose_alpha_on_validation_moves_the_slider_to_the_best_mix_of_the_validation_images(
        qtbot, make_class_folders, tmp_path, state_with, run_dir):
    # Train/test folders: the run's validation part is carved from train/; the grid shows test/.
    state = state_with(make_class_folders(tmp_path / "split", {"train": dict.fromkeys(CLASSES, 6),
                                                                 "test": dict.fromkeys(CLASSES, 2)}))
    screen = ResultsScreen(state)
    qtbot.addWidget(screen)
    try:
        state.set_run(str(run_dir))
        screen.source_combo.setCurrentIndex(screen.source_combo.findData("run"))
        _evaluate(qtbot, screen)

        with qtbot.waitSignal(screen.evaluated, timeout=60_000):  # the grid follows the chosen mix
            qtbot.mouseClick(screen.wise.choose_button, Qt.MouseButton.LeftButton)
        text = screen.wise.choice_label.text()
        assert "chosen on the validation part carved from the 'train' split" in text and "3 images" in text
        alpha = float(text.split("α = ")[1].split()[0])
        assert screen.wise.alpha() == alpha and f"α = {alpha:.1f}" in screen.split_label.text()
    finally:
        screen.shutdown()


def test_a_binary_task_gets_curves_calibration_and_an_operating_point_the_grid_follows(
    qtbot, make_class_folders, tmp_path, state_with
):
    """Train/test folders: the validation part is carved from train, the temperature and threshold are
    fitted there, and the test images are reported; moving the slider re-calls the test images."""
    root = make_class_folders(tmp_path / "xray", {"train": {"normal": 10, "pneumonia": 10},
                                                  "test": {"normal": 6, "pneumonia": 6}})
    screen = ResultsScreen(state_with(root))
    qtbot.addWidget(screen)
    try:
        _evaluate(qtbot, screen)
        scoring = screen.clinical
        assert scoring is not None and scoring.validation.name == "carved-val"
        clinical = scoring.clinical
        assert clinical.n == 12 and clinical.calibration.temperature is not None
        assert "AUC" in screen.summary_label.text() and "ECE" in screen.summary_label.text()
        roc = clinical.to_dict()["roc"]["per_class"]["pneumonia"]["roc"]
        assert list(screen.clinical_pages.curves.roc_curve.getData()[0]) == pytest.approx(roc["fpr"])
        assert screen.tabs.isTabEnabled(screen.tabs.indexOf(screen.clinical_pages.roc_page))

        # Every image called pneumonia at threshold 0: the grid and the matrix follow once the slider rests.
        screen.clinical_pages.operating_point.set_threshold(0.0)
        qtbot.waitUntil(lambda: {t.pred for t in screen.grid.visible_tiles()} == {"pneumonia"}, timeout=5_000)
        assert screen.matrix.counts() == [[0, 6], [0, 6]]
        assert "≥ 0.000" in screen.matrix_note.text() and not screen.matrix_note.isHidden()

        # Export report…: one self-contained HTML file with the same numbers, and the dataset's health
        # as the Data screen left it in the state.
        screen.state.set_health(health_report(screen.state.dataset, check_images=False))
        target = tmp_path / "reports" / "xray report.html"
        target.parent.mkdir()
        assert screen.report_button.isEnabled()
        with qtbot.waitSignal(screen.report_written, timeout=30_000):
            assert screen.export_report(str(target))
        html = target.read_text(encoding="utf-8")
        assert "not a medical device" in html.lower() and 'id="roc"' in html
        assert "unreadable files: 0" in html
        assert f"{clinical.auc.macro_auc.value:.3f}" in html
        assert "http:" not in html and "https:" not in html
        assert all(p["pred"] == "pneumonia" for p in screen.shown_predictions)
        # Each tile names its conformal prediction set, as the engine computed it.
        sets = clinical.conformal.sets
        assert [len(p["set"]) for p in screen.shown_predictions] == sets.sum(axis=1).tolist()
        tile = screen.grid.visible_tiles()[0]
        assert "Prediction set (" in tile.tooltip and "set of " in tile.lines[2]
    finally:
        screen.shutdown()
