"""The HTML report: every section, nothing fetched from outside the file, user strings escaped, the same numbers."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from clipstudio import __version__
from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.data.health import health_report
from clipstudio.engine.data.readers import load_dataset
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.before_after import compare_run
from clipstudio.engine.evaluation.clinical_scoring import score_clinical, with_subgroups
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.report import (
    MAX_EXAMPLES,
    RESEARCH_STATEMENT,
    check_report_path,
    render_report,
    write_report,
)
from clipstudio.engine.evaluation.split_policy import report_part
from clipstudio.engine.prompts import PromptSet
from tests.engine.fake_model import FakeModel, write_png

_MIXES = [(255, 0, 0), (230, 60, 0), (200, 110, 40), (150, 140, 60), (120, 160, 80), (90, 180, 90)]
_EVIL = "<script>alert(1)</script>"


def _dataset(tmp_path, classes=("red", "green"), per_split=(("train", 10), ("test", 6))) -> Dataset:
    """Shades drifting from each class colour towards the other, so the fake model gets some wrong."""
    samples = []
    for split, n in per_split:
        for label, name in enumerate(classes):
            for i in range(n):
                r, g, b = _MIXES[(i + (split == "test")) % len(_MIXES)]
                rgb = {"red": (r, g, b), "green": (g, r, b), "blue": (b, g, r)}[name]
                path = write_png(tmp_path / split / name / f"{name}_{i}.png", rgb, size=32)
                samples.append(Sample(path=path, label=label, split=split))
    names = [f"{c} {_EVIL}" if c == "red" else c for c in classes]
    return Dataset(root=tmp_path, format="test", samples=samples, class_names=names, source=tmp_path)


def _scored(tmp_path, **kwargs):
    ds = _dataset(tmp_path, **kwargs)
    part = report_part(ds, DataConfig())
    scoring = score_clinical(EmbeddingStore(), FakeModel(), ds, PromptSet(), DataConfig(), part, n_bootstrap=50)
    return scoring, part, ds


def _section(html: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


@pytest.fixture
def binary(tmp_path):
    scoring, part, ds = _scored(tmp_path)
    html = render_report(
        scoring, part, ds, health=health_report(ds, check_images=False), model_spec="fake <model>",
        prompts=PromptSet(templates=["a {class_name} square"]), settings={"coverage target": 0.9},
        created=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
    )  # fmt: skip
    return scoring, html


def test_every_section_of_a_zero_shot_report_is_there(binary):
    _, html = binary
    for anchor in ("dataset", "split-policy", "model", "metrics", "confusion-matrix", "roc", "calibration",
                   "operating-point", "conformal", "errors", "software", "statement"):  # fmt: skip
        assert _section(html, anchor)
    for absent in ("training", "comparison", "subgroups"):  # no run, no before/after, no subgroup labels
        assert f'id="{absent}"' not in html
    assert RESEARCH_STATEMENT in _section(html, "statement")
    assert __version__ in _section(html, "software") and "2026-01-02" in _section(html, "software")
    assert "<svg" in _section(html, "roc") and "<svg" in _section(html, "calibration")
    assert "a {class_name} square" in _section(html, "model")


def test_the_report_fetches_nothing_from_outside_the_file(binary):
    _, html = binary
    assert "http:" not in html and "https:" not in html and "url(" not in html
    assert "<script" not in html and "<link" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)


def test_user_strings_are_escaped(binary):
    _, html = binary
    assert _EVIL not in html and "fake <model>" not in html
    assert "red &lt;script&gt;alert(1)&lt;/script&gt;" in _section(html, "confusion-matrix")
    assert "fake &lt;model&gt;" in _section(html, "model")


def test_the_numbers_are_the_scorings(binary):
    scoring, html = binary
    result, clinical = scoring.result, scoring.clinical
    metrics = _section(html, "metrics")
    lo, hi = result.ci95["accuracy"]
    assert f"<td>{result.accuracy:.3f}</td><td>[{lo:.3f}, {hi:.3f}]</td><td>{result.n}</td>" in metrics
    assert f"<td>{result.balanced_accuracy:.3f}</td>" in metrics
    assert f"<td>{clinical.auc.macro_auc.value:.3f}</td>" in metrics
    for row in result.confusion_matrix:
        for v in row:
            assert f">{v}</td>" in _section(html, "confusion-matrix")
    calibration = _section(html, "calibration")
    assert f"<td>{clinical.calibration.ece:.3f}</td><td>{clinical.calibration.ece_after:.3f}</td>" in calibration
    assert f"Temperature {clinical.calibration.temperature:.3f}" in calibration
    point = clinical.operating_point
    assert f"{point.point.threshold:.4f}" in _section(html, "operating-point")
    assert f"<td>{point.sensitivity.value:.3f}</td>" in _section(html, "operating-point")
    conformal = _section(html, "conformal")
    assert f"<b>{clinical.conformal.coverage:.3f}</b>" in conformal
    assert f"<b>{clinical.conformal.mean_set_size:.3f}</b>" in conformal
    assert f"n = {len(scoring.validation.dataset)}" in _section(html, "split-policy")


def test_subgroups_get_a_table_with_their_n_and_figures_and_the_pattern(tmp_path):
    scoring, part, ds = _scored(tmp_path)
    grouped = with_subgroups(scoring, r"_([0-2])\.png$", ds.root, n_bootstrap=50)

    section = _section(render_report(grouped, part, ds), "subgroups")

    report = grouped.clinical.subgroups
    assert "pattern &#x27;_([0-2])\\.png$&#x27; on each image&#x27;s path" in section
    for g in [*report.groups]:
        assert f'<td class="l">{g.group}</td><td>{g.n}</td><td>{g.accuracy.value:.3f}' in section
    assert '<td class="l">(no match)</td>' in section  # images 3-5 are counted, not dropped
    assert sum(g.n for g in report.groups) == scoring.result.n
    assert "clearly worse" in section and "too few images to tell" in section


def test_example_errors_are_small_embedded_thumbnails_at_most_twelve(tmp_path):
    scoring, part, ds = _scored(tmp_path, per_split=(("train", 10), ("test", 40)))
    wrong = sum(p["true"] != p["pred"] for p in scoring.result.predictions)
    assert wrong > MAX_EXAMPLES  # else the test does not test the limit
    errors = _section(render_report(scoring, part, ds), "errors")
    assert errors.count("<img") == MAX_EXAMPLES and f"{wrong} of {scoring.result.n}" in errors


def test_a_multiclass_report_has_no_operating_point_and_one_roc_curve_per_class(tmp_path):
    scoring, part, ds = _scored(tmp_path, classes=("red", "green", "blue"))
    html = render_report(scoring, part, ds)
    assert 'id="operating-point"' not in html
    assert _section(html, "roc").count("<polyline") == 3
    assert "macro AUC" in _section(html, "metrics")


@pytest.mark.slow
def test_a_run_report_has_its_settings_training_curves_and_before_after(trained, tmp_path):
    ds = load_dataset(trained["data"])
    part = report_part(ds, DataConfig())
    comparison = compare_run(trained["full"], part.dataset, split=part.name, source=ds, device="cpu")
    html = render_report(comparison.clinical, part, ds, run_dir=trained["full"], comparison=comparison)
    assert "learning_rate" in _section(html, "model") and "<svg" in _section(html, "training")
    comparison_section = _section(html, "comparison")
    paired = comparison.paired
    assert f"<td>{paired.accuracy.a:.3f}</td><td>{paired.accuracy.b:.3f}</td>" in comparison_section
    assert "McNemar" in comparison_section


def test_write_report_refuses_a_folder_or_a_missing_folder_and_writes_the_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        check_report_path(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(tmp_path / "nowhere" / "r.html", "<html></html>")
    assert write_report(tmp_path / "r.html", "<p>ok</p>").read_text(encoding="utf-8") == "<p>ok</p>"
