"""The clinical pages of the Results screen: curves, operating point slider, calibration, from engine numbers."""

from __future__ import annotations

import numpy as np
import pytest

from clipstudio.engine.evaluation.calibration import softmax
from clipstudio.engine.evaluation.clinical import clinical_metrics
from clipstudio.gui.widgets.clinical_view import SLIDER_STEPS, ClinicalPages


def _predictions(n: int, n_classes: int, seed: int, scale: float = 4.0):
    """Over-confident logits that still carry signal: the true class gets a head start."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.5
    return labels, scale * logits


@pytest.fixture
def pages(qtbot):
    pages = ClinicalPages()
    for page in (pages.roc_page, pages.calibration_page):
        qtbot.addWidget(page)
        page.resize(700, 500)
        page.show()
    return pages


def test_binary_curves_slider_and_calibration_show_the_engine_numbers(pages):
    test_y, test_logits = _predictions(300, 2, seed=1)
    val_y, val_logits = _predictions(200, 2, seed=2)
    names = ["normal", "pneumonia"]
    clinical = clinical_metrics(test_y, test_logits, names, val_labels=val_y, val_logits=val_logits, n_bootstrap=200)
    probs = softmax(test_logits, clinical.calibration.temperature)
    pages.set_scoring(clinical, test_y, probs)

    roc = clinical.to_dict()["roc"]["per_class"]["pneumonia"]["roc"]
    x, y = pages.curves.roc_curve.getData()
    np.testing.assert_allclose(x, roc["fpr"])
    np.testing.assert_allclose(y, roc["tpr"])
    assert "AUC 0." in pages.curves.auc_label.text() and "95 % CI" in pages.curves.auc_label.text()

    # The slider starts at the threshold chosen on validation, and reports what the engine reports there.
    panel = pages.operating_point
    assert panel.isVisibleTo(pages.roc_page)
    chosen = clinical.operating_point
    assert panel.slider.value() == round(chosen.point.threshold * SLIDER_STEPS)
    assert "validation images" in panel.chosen_label.text()
    seen = []
    pages.operating_point_changed.connect(seen.append)
    panel.set_threshold(0.0)  # everything called pneumonia
    m = seen[-1]
    assert (m.tp, m.fn) == (int(np.sum(test_y == 1)), 0)
    assert m.sensitivity.value == 1.0 and m.specificity.value == 0.0
    mx, my = pages.curves.roc_marker.getData()
    assert (mx[0], my[0]) == (1.0, 1.0)
    assert "sensitivity 100.0 %" in panel.rates_label.text()

    text = pages.calibration.summary.text()
    assert f"{100 * clinical.calibration.ece:.1f} %" in text
    assert f"{100 * clinical.calibration.ece_after:.1f} %" in text and "T = " in text
    assert clinical.calibration.ece_after < clinical.calibration.ece  # the over-confident logits got calibrated
    assert "coverage" in pages.calibration.conformal_label.text()


def test_multiclass_lists_every_class_and_has_no_operating_point(pages):
    test_y, test_logits = _predictions(240, 4, seed=3)
    names = ["a", "b", "c", "d"]
    clinical = clinical_metrics(test_y, test_logits, names, n_bootstrap=0)  # no validation: nothing fitted
    pages.set_scoring(clinical, test_y, softmax(test_logits, 1.0))
    combo = pages.curves.class_combo
    assert [combo.itemText(i) for i in range(combo.count())] == names
    combo.setCurrentIndex(2)
    x, _ = pages.curves.roc_curve.getData()
    np.testing.assert_allclose(x, clinical.to_dict()["roc"]["per_class"]["c"]["roc"]["fpr"])
    assert "Macro" in pages.curves.auc_label.text()
    assert not pages.operating_point.isVisibleTo(pages.roc_page)
    assert "Not recalibrated" in pages.calibration.summary.text()
    assert "not computed" in pages.calibration.conformal_label.text()


def test_clearing_disables_the_pages(pages):
    test_y, test_logits = _predictions(100, 2, seed=4)
    pages.set_scoring(clinical_metrics(test_y, test_logits, ["x", "y"], n_bootstrap=0), test_y,
                      softmax(test_logits, 1.0))
    pages.set_scoring(None)
    assert not pages.roc_page.isEnabled() and not pages.calibration_page.isEnabled()
    assert pages.curves.roc_curve.getData()[0] is None or len(pages.curves.roc_curve.getData()[0]) == 0
