"""The Results screen's choices on a binary task: the rule that picks the threshold, and subgroups by a pattern
or by a metadata column."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from clipstudio.engine.evaluation.clinical_scoring import with_operating_point
from clipstudio.gui.screens import results_screen
from clipstudio.gui.screens.results_screen import ResultsScreen
from clipstudio.gui.widgets.clinical_view import SLIDER_STEPS


@pytest.fixture
def screen(qtbot, open_screen, make_class_folders, tmp_path, state_with):
    root = make_class_folders(tmp_path / "xray", {"train": {"normal": 10, "pneumonia": 10},
                                                  "test": {"normal": 6, "pneumonia": 6}})
    widget = open_screen(ResultsScreen, state_with(root))
    with qtbot.waitSignal(widget.evaluated, timeout=30_000):
        widget.evaluate()
    return widget


def test_choosing_a_sensitivity_target_moves_the_slider_figures_and_grid_to_the_point_chosen_on_validation(
        qtbot, screen):
    youden = screen.clinical
    chooser = screen.clinical_pages.operating_point.rule
    assert chooser.rule() == "youden" and youden.clinical.operating_point.point.rule == "youden"

    chooser.rule_combo.setCurrentIndex(chooser.rule_combo.findData("sensitivity"))

    expected = with_operating_point(youden, "sensitivity=0.95").clinical.operating_point
    point = screen.clinical.clinical.operating_point
    assert point.point.rule == "target_sensitivity" and point.point.target == 0.95
    assert point.point.threshold == expected.point.threshold
    panel = screen.clinical_pages.operating_point
    assert panel.slider.value() == round(point.point.threshold * SLIDER_STEPS)
    assert "sensitivity target of 95 %" in panel.chosen_label.text()
    assert panel.metrics.sensitivity.value == point.sensitivity.value
    # The grid calls the images at the new threshold once the slider rests.
    called = point.tp + point.fp
    qtbot.waitUntil(lambda: sum(t.pred == "pneumonia" for t in screen.grid.visible_tiles()) == called, timeout=5_000)
    assert f"≥ {point.point.threshold:.3f}" in screen.matrix_note.text()

    # The next evaluation keeps the user's rule.
    with qtbot.waitSignal(screen.evaluated, timeout=30_000):
        screen.evaluate()
    assert screen.clinical.clinical.operating_point.point.rule == "target_sensitivity"
    assert chooser.rule() == "sensitivity=0.95"


def test_subgroups_by_a_path_pattern_fill_the_table_and_go_into_the_report(qtbot, screen, tmp_path):
    view = screen.subgroups
    assert screen.tabs.indexOf(view) >= 0
    view.pattern_edit.setText(r"_([0-2])\.png$")
    qtbot.mouseClick(view.show_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.table.rowCount() > 0, timeout=30_000)

    names = [view.table.item(r, 0).text() for r in range(view.table.rowCount())]
    assert names == ["All images", "(no match)", "0", "1", "2"]
    counts = [int(view.table.item(r, 1).text()) for r in range(view.table.rowCount())]
    assert counts == [12, 6, 2, 2, 2]
    assert screen.clinical.clinical.subgroups is view.report

    target = tmp_path / "report.html"
    with qtbot.waitSignal(screen.report_written, timeout=30_000):
        assert screen.export_report(str(target))
    assert '<section id="subgroups">' in target.read_text(encoding="utf-8")
    pdf = tmp_path / "report.pdf"  # the dialog's other type: the same report, printed
    with qtbot.waitSignal(screen.report_written, timeout=30_000):
        assert screen.export_report(str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF-")

    # A pattern that matches nothing says so in the view, without a dialog.
    view.pattern_edit.setText("site(\\d)")
    view.show_button.click()
    qtbot.waitUntil(lambda: "matches none of the 12 image paths" in view.status_label.text(), timeout=30_000)
    assert view.table.rowCount() == 0 and screen.clinical.clinical.subgroups is None


def test_subgroups_by_a_column_of_a_loaded_metadata_file_fill_the_table_and_go_into_the_report(
        qtbot, screen, tmp_path, monkeypatch):
    view = screen.subgroups
    assert not view.column_combo.isEnabled()  # class folders carry no metadata of their own
    meta = tmp_path / "sites.csv"  # a made-up site per test image, and one row naming no image
    rows = [f"test/{c}/{c}_{i}.png,{'site1' if i < 4 else 'site2'}" for c in ("normal", "pneumonia") for i in range(6)]
    meta.write_text("image,site\n" + "\n".join(rows) + "\nnot/there.png,site3\n", encoding="utf-8")
    folders = []  # where the dialog opens: the dataset's folder, where such a file usually lies
    monkeypatch.setattr(results_screen, "ask_metadata_path", lambda _parent, folder: folders.append(folder) or str(meta))

    qtbot.mouseClick(view.metadata_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.column() == "site", timeout=30_000)
    assert view.column_radio.isChecked() and folders == [str(screen.state.dataset.root)]
    status = view.status_label.text()
    assert "metadata for 12 of 32 images (columns: site)" in status and "1 row names no image" in status

    qtbot.mouseClick(view.show_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.table.rowCount() > 0, timeout=30_000)

    assert [view.table.item(r, 0).text() for r in range(view.table.rowCount())] == ["All images", "site1", "site2"]
    assert [int(view.table.item(r, 1).text()) for r in range(view.table.rowCount())] == [12, 8, 4]
    assert "by column 'site'" in view.status_label.text()
    target = tmp_path / "report.html"
    with qtbot.waitSignal(screen.report_written, timeout=30_000):
        assert screen.export_report(str(target))
    html = target.read_text(encoding="utf-8")
    assert "Subgroups by <b>metadata column &#x27;site&#x27;</b>" in html and str(meta) in html

    # A new scoring keeps the grouping: the figures follow it.
    with qtbot.waitSignal(screen.evaluated, timeout=30_000):
        screen.evaluate()
    qtbot.waitUntil(lambda: screen.clinical.clinical.subgroups is not None, timeout=30_000)
    assert screen.clinical.clinical.subgroups.by == "column 'site'"


def test_the_subgroups_tab_offers_the_columns_of_an_annotation_file(open_screen, state_with, tmp_path, tiny_png):
    lines = ["image,label,patient_id,sex"]
    for i in range(4):
        tiny_png(tmp_path / "images" / f"{i}.png")
        lines.append(f"images/{i}.png,{'ab'[i % 2]},P{i},{'FM'[i // 2]}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    view = open_screen(ResultsScreen, state_with(tmp_path / "labels.csv")).subgroups

    offered = [view.column_combo.itemData(i) for i in range(view.column_combo.count())]
    assert offered == ["patient_id", "sex"] and view.column_combo.isEnabled()


@pytest.mark.slow
def test_compare_tab_pairs_any_two_runs_or_a_run_and_its_start_on_the_same_images(qtbot, state_with, trained):
    from clipstudio.engine.evaluation.before_after import compare_run

    state = state_with(trained["data"])
    state.set_run(str(trained["full"]))
    widget = ResultsScreen(state)
    qtbot.addWidget(widget)
    try:
        widget.tabs.setCurrentWidget(widget.model_pair)  # opening the tab fills the boxes
        pair = widget.model_pair
        assert pair.a_combo.currentData() == ("start", str(trained["full"]))
        assert pair.b_combo.currentData() == ("run", str(trained["full"]))
        offered = [pair.b_combo.itemData(i) for i in range(pair.b_combo.count())]
        assert ("current", "") in offered

        # The run against its start: the same paired comparison as the Before/after tab's engine call.
        with qtbot.waitSignal(widget.models_compared, timeout=120_000) as blocker:
            qtbot.mouseClick(pair.compare_button, Qt.MouseButton.LeftButton)
        payload = blocker.args[0]
        before_after = compare_run(trained["full"], state.dataset, source=state.dataset)
        assert payload["paired"]["accuracy"]["difference"]["value"] == pytest.approx(
            before_after.paired.accuracy.difference.value)
        assert payload["paired"]["n"] == 18 and "B minus A" in pair.summary_label.text()
        assert pair.table.horizontalHeaderItem(1).text() == "A" and pair.table.rowCount() == 2 + 3
        assert "McNemar" in pair.summary_label.text()

        # Two different runs, and a refusal of the same model twice.
        probe = ("run", str(trained["probe"]))
        with qtbot.waitSignal(widget.models_compared, timeout=120_000) as blocker:
            widget.compare_models(("run", str(trained["full"])), probe)
        assert blocker.args[0]["b"]["accuracy"] == 1.0  # the probe's head, as `zeroshot --model RUN` scores it
        pair.b_combo.setCurrentIndex(pair.b_combo.findData(pair.a_combo.currentData()))
        pair.compare_button.click()
        assert "Pick two different models" in pair.summary_label.text()
    finally:
        widget.shutdown()
