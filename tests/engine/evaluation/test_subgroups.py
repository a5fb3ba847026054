from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.subgroups import (
    NO_VALUE,
    UNMATCHED,
    Grouping,
    groups_from_column,
    groups_from_pattern,
    subgroup_metrics,
)


def _hospitals(seed: int = 0):
    """Three hospitals; the model is good on two and near chance on "C"."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(["A", "B", "C"], [300, 300, 200])
    labels = rng.integers(0, 3, len(groups))
    skill = np.where(groups == "C", 0.2, 3.0)[:, None]
    logits = rng.normal(size=(len(groups), 3)) + skill * np.eye(3)[labels]
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True), groups


def test_each_subgroup_gets_its_own_n_and_metrics():
    labels, probs, groups = _hospitals()

    r = subgroup_metrics(labels, probs, groups, ["x", "y", "z"], n_bootstrap=200)

    assert [g.group for g in r.groups] == ["A", "B", "C"]
    assert [g.n for g in r.groups] == [300, 300, 200]
    assert r.overall.n == r.n == 800
    c = groups == "C"
    hospital_c = r.groups[2]
    assert hospital_c.accuracy.value == pytest.approx(np.mean(probs[c].argmax(axis=1) == labels[c]))
    assert hospital_c.balanced_accuracy.value == pytest.approx(
        balanced_accuracy_score(labels[c], probs[c].argmax(axis=1))
    )
    assert hospital_c.macro_auc.value == pytest.approx(roc_auc_score(labels[c], probs[c], multi_class="ovr"))
    assert hospital_c.accuracy.ci95[0] < hospital_c.accuracy.value < hospital_c.accuracy.ci95[1]


def test_a_subgroup_clearly_below_the_overall_figure_is_flagged():
    labels, probs, groups = _hospitals()

    r = subgroup_metrics(labels, probs, groups, ["x", "y", "z"], n_bootstrap=200)

    assert r.groups[2].flagged == ["accuracy", "balanced_accuracy", "macro_auc"]
    assert r.groups[0].flagged == [] and r.groups[1].flagged == []
    assert r.to_dict()["flagged"] == ["C"]


def test_a_single_class_subgroup_has_no_auc_and_says_why():
    labels, probs, groups = _hospitals()
    labels[groups == "B"] = 1

    r = subgroup_metrics(labels, probs, list(groups), ["x", "y", "z"], n_bootstrap=100)

    auc = r.groups[1].macro_auc
    assert auc.value is None and auc.ci95 is None
    assert "all of one class" in auc.reason
    assert r.groups[1].accuracy.value is not None
    json.dumps(r.to_dict(), allow_nan=False)


def test_a_one_image_subgroup_gets_a_figure_but_no_degenerate_interval():
    labels, probs, groups = _hospitals()
    groups = groups.astype(object)
    groups[0] = "D"

    r = subgroup_metrics(labels, probs, groups, ["x", "y", "z"], n_bootstrap=100)

    d = r.groups[3]
    assert d.n == 1 and d.accuracy.value in (0.0, 1.0)
    assert d.accuracy.ci95 is None and "same value" in d.accuracy.reason
    assert d.flagged == []


def test_many_classes_keep_accuracy_cis_and_give_the_auc_without_one():
    from clipstudio.engine.evaluation.roc import MAX_CLASSES_WITH_DETAIL

    k = MAX_CLASSES_WITH_DETAIL + 20
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(k), 4)
    probs = rng.dirichlet(np.ones(k), size=len(labels))
    groups = np.where(np.arange(len(labels)) % 2, "site A", "site B")
    report = subgroup_metrics(labels, probs, groups, [f"c{i}" for i in range(k)], n_bootstrap=100)
    assert report.overall.accuracy.ci95 is not None
    assert report.overall.macro_auc.ci95 is None and "classes" in report.overall.macro_auc.reason
    assert report.overall.macro_auc.value is not None


def test_a_path_pattern_names_each_images_subgroup_by_its_first_capture_group(tmp_path):
    paths = [tmp_path / "site1" / "normal" / "a.png", tmp_path / "site2" / "pneumonia" / "b.png",
             tmp_path / "other" / "normal" / "c.png"]

    assert groups_from_pattern(paths, r"^(site\d)/", tmp_path) == ["site1", "site2", UNMATCHED]
    assert groups_from_pattern(paths, r"normal|pneumonia", tmp_path) == ["normal", "pneumonia", "normal"]
    with pytest.raises(ConfigError, match="Invalid subgroup pattern"):
        groups_from_pattern(paths, "(site", tmp_path)
    with pytest.raises(ConfigError, match="matches none of the 3 image paths .e.g. 'site1/normal/a.png'"):
        groups_from_pattern(paths, "hospital", tmp_path)


def _samples(tmp_path):
    from clipstudio.engine.data.dataset import Sample

    return [Sample(tmp_path / "a.png", 0, group="P1", metadata={"sex": "F", "site": "site1"}),
            Sample(tmp_path / "b.png", 1, group="P2", metadata={"sex": "M"}),
            Sample(tmp_path / "c.png", 1, group="P2", metadata={"Site": "x"})]


def test_a_metadata_column_names_each_images_subgroup_and_images_without_a_value_share_one(tmp_path):
    samples = _samples(tmp_path)

    assert groups_from_column(samples, "sex") == ["F", "M", NO_VALUE]
    assert groups_from_column(samples, "site") == ["site1", NO_VALUE, NO_VALUE]  # the exact name wins over "Site"
    assert groups_from_column(samples, "SEX") == ["F", "M", NO_VALUE]  # else case does not matter
    assert groups_from_column(samples, "patient") == ["P1", "P2", "P2"]  # each image's patient group
    # One per path asked for: the report images, in the scoring's order.
    assert groups_from_column(samples, "sex", [str(tmp_path / "c.png"), tmp_path / "a.png"]) == [NO_VALUE, "F"]


def test_patient_means_the_patient_column_however_the_annotation_file_names_it(tmp_path):
    from clipstudio.engine.data.dataset import Sample

    samples = [Sample(tmp_path / "a.png", 0, group="P1", metadata={"case_id": "P1"}),
               Sample(tmp_path / "b.png", 1, group="P2", metadata={"case_id": "P2"})]

    assert groups_from_column(samples, "patient") == groups_from_column(samples, "case_id") == ["P1", "P2"]


def test_a_column_the_images_lack_or_that_holds_no_value_is_a_config_error_listing_the_columns(tmp_path):
    from clipstudio.engine.data.dataset import Sample

    samples = _samples(tmp_path)
    with pytest.raises(ConfigError, match="No metadata column 'age'; columns available: sex, site, Site, patient"):
        groups_from_column(samples, "age")
    with pytest.raises(ConfigError, match="the images have no metadata"):
        groups_from_column([Sample(tmp_path / "a.png", 0)], "sex")
    with pytest.raises(ConfigError, match="'Site' has no value for any of the 2 images"):
        groups_from_column(samples, "Site", [tmp_path / "a.png", tmp_path / "b.png"])


def test_a_grouping_says_what_grouped_the_images_in_the_report_json(tmp_path):
    labels, probs, groups = _hospitals()
    by_column, by_pattern = Grouping(column="site"), Grouping(pattern=r"^(site\d+)/")

    report = subgroup_metrics(labels, probs, groups, ["x", "y", "z"], n_bootstrap=0,
                              grouping=by_column.words, by=by_column.by)

    assert report.to_dict()["by"] == "column 'site'" and report.to_dict()["grouping"] == "metadata column 'site'"
    assert by_pattern.by == r"pattern '^(site\d+)/'"
    assert by_pattern.groups([tmp_path / "site3" / "a.png"], root=tmp_path) == ["site3"]
    with pytest.raises(ValueError):
        Grouping(pattern="x", column="y")
