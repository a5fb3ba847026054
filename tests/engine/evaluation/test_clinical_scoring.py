"""Zero-shot scoring with the clinical metrics: what is fitted, on which images, and what the run folder keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipstudio.engine.config import DataConfig
from clipstudio.engine.data.dataset import Dataset, Sample
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.calibration import fit_temperature
from clipstudio.engine.evaluation.clinical_scoring import (
    calibrated_predictions,
    operating_point_spec,
    run_operating_point,
    save_run_calibration,
    score_clinical,
    validation_part,
    with_operating_point,
    with_subgroups,
)
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.operating_point import OperatingPoint
from clipstudio.engine.evaluation.split_policy import report_part, selection_part
from clipstudio.engine.evaluation.zero_shot import score_dataset
from clipstudio.engine.prompts import PromptSet
from clipstudio.engine.runs.layout import CALIBRATION_FILE
from tests.engine.fake_model import FakeModel, write_png

# Shades between the class colours, so the fake model is unsure (and sometimes wrong) about some images.
_MIXES = [(255, 0, 0), (230, 60, 0), (200, 110, 40), (150, 140, 60), (120, 160, 80)]


def _dataset(tmp_path, splits: dict[str, int], classes=("red", "green")) -> Dataset:
    """``n`` images per class and split; the shades drift from the class colour towards the other one."""
    samples = []
    for split, n in splits.items():
        for label, name in enumerate(classes):
            for i in range(n):
                r, g, b = _MIXES[(i + (split == "test")) % len(_MIXES)]
                rgb = {"red": (r, g, b), "green": (g, r, b), "blue": (b, g, r)}[name]
                path = write_png(tmp_path / split / name / f"{name}_{i}.png", rgb)
                samples.append(Sample(path=path, label=label, split=split))
    return Dataset(root=tmp_path, format="test", samples=samples, class_names=list(classes))


def _score(ds: Dataset, data: DataConfig | None = None, **kwargs):
    data = data or DataConfig()
    model, store = FakeModel(), EmbeddingStore()
    part = report_part(ds, data)
    return score_clinical(store, model, ds, PromptSet(), data, part, n_bootstrap=50, **kwargs), model, store


def test_temperature_is_fitted_on_the_carved_validation_part_never_on_test(tmp_path):
    ds = _dataset(tmp_path, {"train": 10, "test": 5})
    scored, model, store = _score(ds)

    assert scored.validation.name == "carved-val" and len(scored.validation.dataset) == 4
    val = score_dataset(store, model, selection_part(ds, DataConfig()).dataset, PromptSet(), with_logits=True)
    on_val = fit_temperature(val.labels, val.logits)
    on_test = fit_temperature(scored.result.labels, scored.result.logits)
    assert on_val != pytest.approx(on_test)
    assert scored.clinical.calibration.temperature == pytest.approx(on_val)
    d = scored.to_dict()
    assert d["calibration"]["fitted_on"] == {"split": "validation", "n": 4}
    assert d["validation"]["split"] == "carved-val" and d["validation"]["n"] == 4
    assert d["n"] == 10 and d["auc"]["macro"]["n"] == 10 and d["auc"]["macro"]["ci95"] is not None
    assert d["conformal"]["coverage_target"] == 0.9 and d["conformal"]["mean_set_size"] is not None


def test_a_report_that_fell_back_to_val_fits_nothing_and_says_why(tmp_path):
    ds = _dataset(tmp_path, {"train": 6, "val": 4})
    scored, _, _ = _score(ds)

    assert scored.result.n == 8  # the 'val' split, reported on
    assert scored.validation is None and "among the evaluated images" in scored.validation_reason
    d = scored.to_dict()
    assert d["calibration"]["temperature"] is None and "never on test" in d["calibration"]["reason"]
    assert d["conformal"]["coverage"] is None
    assert d["operating_point"]["reason"] and "threshold" not in d["operating_point"]
    assert d["validation"] == {"split": None, "n": 0, "reason": scored.validation_reason}


def test_the_operating_point_is_binary_only_and_follows_the_rule(tmp_path):
    binary, _, _ = _score(_dataset(tmp_path / "two", {"train": 10, "test": 5}), operating_point="sensitivity=1")
    point = binary.to_dict()["operating_point"]
    assert point["rule"] == "target_sensitivity" and point["target"] == 1.0
    assert point["fitted_on"]["n"] == 4 and point["sensitivity"]["n"] == 5
    assert binary.clinical.operating_point.point.val_sensitivity == 1.0

    three, _, _ = _score(_dataset(tmp_path / "three", {"train": 10, "test": 5}, ("red", "green", "blue")))
    assert "operating_point" not in three.to_dict() and three.clinical.calibration.temperature is not None


def test_another_rule_is_chosen_on_the_kept_validation_logits_as_a_fresh_scoring_would(tmp_path):
    ds = _dataset(tmp_path, {"train": 10, "test": 5})
    youden, _, _ = _score(ds)
    fresh, _, _ = _score(ds, operating_point="specificity=0.9")

    switched = with_operating_point(youden, "specificity=0.9")

    assert switched.to_dict()["operating_point"] == fresh.to_dict()["operating_point"]
    assert switched.clinical.auc is youden.clinical.auc  # nothing else was rescored
    assert youden.clinical.operating_point.point.rule == "youden"  # the original is left as it was


def test_without_validation_another_rule_gives_no_point_and_says_why(tmp_path):
    ds = _dataset(tmp_path, {"train": 10, "test": 5})
    scored, _, _ = _score(ds, data=DataConfig(val_fraction=0.0))

    switched = with_operating_point(scored, "sensitivity=0.95")

    assert switched.clinical.operating_point is None
    assert "chosen on validation only" in switched.to_dict()["operating_point"]["reason"]


def test_subgroups_from_a_path_pattern_cover_every_report_image(tmp_path):
    scored, _, _ = _score(_dataset(tmp_path, {"train": 10, "test": 5}))

    grouped = with_subgroups(scored, r"_(\d)\.png$", tmp_path)  # the image number as the subgroup

    block = grouped.to_dict()["subgroups"]
    assert block["n"] == 10 and sorted(block["groups"]) == ["0", "1", "2", "3", "4"]
    assert all(g["n"] == 2 for g in block["groups"].values())
    assert block["overall"]["accuracy"]["value"] == pytest.approx(scored.result.accuracy)
    assert "_(\\d)" in block["grouping"]
    json.dumps(grouped.to_dict())
    with pytest.raises(ConfigError, match="matches none of the 10 image paths"):
        with_subgroups(scored, "site(\\d)", tmp_path)


def test_calibrated_predictions_follow_the_temperature_and_the_operating_point(tmp_path):
    scored, _, _ = _score(_dataset(tmp_path, {"train": 10, "test": 5}))
    result, t = scored.result, scored.clinical.calibration.temperature
    predictions, matrix = calibrated_predictions(result, t)
    z = result.logits.astype(np.float64) / t
    z = np.exp(z - z.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    for row, p in zip(predictions, probs, strict=True):
        assert row["topk"][0][1] == pytest.approx(p.max())  # calibrated, most probable first
        assert row["pred"] == result.class_names[int(np.argmax(p))]
    assert matrix == result.confusion_matrix  # same argmax: the same matrix as the plain scoring
    assert [r["path"] for r in predictions] == [r["path"] for r in result.predictions]

    # A threshold of 0 on "green" calls every image green: the matrix's green column holds them all.
    everything = OperatingPoint(rule="fixed", threshold=0.0, positive_class="green", temperature=t)
    predictions, matrix = calibrated_predictions(result, t, everything)
    assert {r["pred"] for r in predictions} == {"green"}
    assert matrix == [[0, 5], [0, 5]]

    sets = np.zeros((10, 2), dtype=bool)
    sets[:, 0] = True
    sets[3] = True
    predictions, _ = calibrated_predictions(result, t, sets=sets)
    assert [r["set"] for r in predictions[2:5]] == [["red"], ["red", "green"], ["red"]]
    with pytest.raises(ValueError, match="prediction sets"):
        calibrated_predictions(result, t, sets=sets[:3])


def test_logits_stay_out_of_the_json(tmp_path):
    scored, _, _ = _score(_dataset(tmp_path, {"train": 10, "test": 5}))
    assert scored.result.logits.shape == (10, 2) and scored.result.logits.dtype == np.float32
    json.dumps(scored.to_dict())  # plain JSON: no arrays


def test_no_validation_part_when_the_val_fraction_is_zero(tmp_path):
    ds = _dataset(tmp_path, {"train": 10, "test": 5})
    part, reason = validation_part(ds, DataConfig(val_fraction=0.0), report_part(ds, DataConfig()))
    assert part is None and "no validation images" in reason


def test_operating_point_spellings():
    assert operating_point_spec("youden") == "youden"
    assert operating_point_spec("Sensitivity=0.95") == {"target_sensitivity": 0.95}
    assert operating_point_spec("specificity=0.9") == {"target_specificity": 0.9}
    assert operating_point_spec(None) is None
    for bad in ("sens=0.9", "sensitivity=1.5", "specificity", "best"):
        with pytest.raises(ConfigError, match="youden"):
            operating_point_spec(bad)


def test_the_run_folder_keeps_the_fitted_temperature_and_operating_point(tmp_path):
    scored, _, _ = _score(_dataset(tmp_path / "data", {"train": 10, "test": 5}))
    run = tmp_path / "run"
    run.mkdir()
    assert run_operating_point(run) is None

    assert save_run_calibration(run, scored)
    stored = json.loads((run / CALIBRATION_FILE).read_text(encoding="utf-8"))
    assert stored["temperature"] == scored.clinical.calibration.temperature
    assert stored["fitted_on"]["split"] == "carved-val" and stored["classes"] == ["red", "green"]
    assert run_operating_point(run) == scored.clinical.operating_point.point

    # Applying the stored point reproduces it on the same images, threshold and all.
    again, _, _ = _score(_dataset(tmp_path / "data", {"train": 10, "test": 5}), operating_point=run_operating_point(run))
    assert again.clinical.operating_point.to_dict() == scored.clinical.operating_point.to_dict()


def test_nothing_is_stored_when_nothing_was_fitted(tmp_path):
    scored, _, _ = _score(_dataset(tmp_path / "data", {"train": 6, "val": 4}))
    assert not save_run_calibration(tmp_path, scored)
    assert not (tmp_path / CALIBRATION_FILE).exists()


def test_a_stored_point_of_another_class_is_refused(tmp_path):
    point = OperatingPoint(rule="fixed", threshold=0.5, positive_class="blue")
    with pytest.raises(ConfigError, match="blue"):
        _score(_dataset(tmp_path, {"train": 10, "test": 5}), operating_point=point)
