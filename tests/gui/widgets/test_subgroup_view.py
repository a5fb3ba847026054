"""The Subgroups view: a pattern field, and a table whose flagged rows stand out."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from clipstudio.engine.evaluation.subgroups import Grouping, subgroup_metrics
from clipstudio.gui.widgets.subgroup_view import FLAGGED_BACKGROUND, SubgroupView


def _hospitals():
    """Two hospitals where the model is good, and "C" where it is near chance."""
    rng = np.random.default_rng(0)
    groups = np.repeat(["A", "B", "C"], [200, 200, 150])
    labels = rng.integers(0, 2, len(groups))
    skill = np.where(groups == "C", 0.1, 3.0)[:, None]
    logits = rng.normal(size=(len(groups), 2)) + skill * np.eye(2)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return subgroup_metrics(labels, probs, groups, ["normal", "pneumonia"], n_bootstrap=200,
                            grouping="pattern '^(\\w)/' on each image's path")


def test_each_subgroup_gets_a_row_with_n_and_intervals_and_the_worse_one_is_marked(qtbot):
    view = SubgroupView()
    qtbot.addWidget(view)
    report = _hospitals()

    view.set_report(report)

    table = view.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["All images", "A", "B", "C"]
    assert [table.item(r, 1).text() for r in range(table.rowCount())] == ["550", "200", "200", "150"]
    c = report.groups[2]
    lo, hi = c.accuracy.ci95
    assert table.item(3, 2).text() == f"{100 * c.accuracy.value:.1f} %  ({100 * lo:.1f} – {100 * hi:.1f})"
    assert view.flagged_rows() == ["C"] and "accuracy" in table.item(3, 4).text()
    assert table.item(3, 0).background().color() == FLAGGED_BACKGROUND
    assert table.item(1, 0).background().style() == Qt.BrushStyle.NoBrush  # a fine row is left plain
    assert "clearly worse than all images together: C" in view.status_label.text()
    assert "too few images to tell" in view.note.text()


def test_show_asks_for_the_typed_pattern_and_an_empty_one_asks_for_a_pattern(qtbot):
    view = SubgroupView()
    qtbot.addWidget(view)
    asked = []
    view.grouping_submitted.connect(asked.append)

    view.show_button.click()
    assert asked == [] and "Type a pattern first" in view.status_label.text()

    qtbot.keyClicks(view.pattern_edit, r"^(site\d)/")
    qtbot.keyClick(view.pattern_edit, Qt.Key.Key_Return)
    assert asked == [Grouping(pattern=r"^(site\d)/")]


def test_choosing_a_metadata_column_asks_for_that_column_and_without_columns_points_at_the_metadata_file(qtbot):
    view = SubgroupView()
    qtbot.addWidget(view)
    asked = []
    view.grouping_submitted.connect(asked.append)
    files = []
    view.metadata_file_requested.connect(lambda: files.append(True))

    view.column_radio.setChecked(True)
    view.show_button.click()
    assert asked == [] and "no metadata columns" in view.status_label.text()
    assert not view.column_combo.isEnabled()
    view.metadata_button.click()
    assert files == [True]

    view.set_columns(["sex", "site"], choose="site")
    view.show_button.click()
    assert asked == [Grouping(column="site")] and view.column_radio.isChecked()

    view.column_combo.setCurrentIndex(view.column_combo.findData("sex"))
    view.set_columns(["age", "sex"])  # another file: the column chosen stays chosen
    assert view.column() == "sex"


def test_the_choices_fit_the_results_screens_right_half_without_cutting_a_label(qtbot):
    # Seen in a real window at the default size: beside a Show button the radio labels were cut to
    # "Pattern on the pa" and "Metadata columr".
    view = SubgroupView()
    qtbot.addWidget(view)
    view.set_columns([])  # the longest combo text
    assert view.minimumSizeHint().width() <= 500
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    for widget in (view.pattern_radio, view.column_radio, view.metadata_button, view.show_button):
        assert widget.width() >= widget.sizeHint().width(), widget.text()
