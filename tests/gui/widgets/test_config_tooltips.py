"""The training form and the split panel show the config fields' own help texts: one source with --help."""

from __future__ import annotations

import pytest

from clipstudio.cli.args import field_help
from clipstudio.engine.config import DataConfig, TrainConfig, help_for
from clipstudio.gui.widgets.split_settings import SplitSettingsPanel
from clipstudio.gui.widgets.train_form import FIELD_PATHS, TrainForm


@pytest.fixture
def form(qtbot):
    widget = TrainForm()
    qtbot.addWidget(widget)
    return widget


def test_train_form_tooltips_are_the_config_help_texts_that_cli_help_shows(form):
    for name, paths in FIELD_PATHS.items():
        tip = form.field(name).toolTip()
        for path in paths:
            assert help_for(TrainConfig, path) in tip, name
            assert field_help(TrainConfig, path).replace("%%", "%") == help_for(TrainConfig, path)


def test_cross_validation_is_set_on_the_form_and_the_split_panel_has_no_fold_setting(qtbot, form):
    form.cv_folds.setValue(3)
    cfg = form.to_config()
    assert (cfg.cv.use_cv, cfg.cv.n_splits) == (True, 3)
    panel = SplitSettingsPanel({})
    qtbot.addWidget(panel)
    assert "k_folds" not in panel.settings() and not hasattr(panel, "k_folds")


def test_split_panel_tooltips_and_defaults_come_from_data_config(qtbot):
    panel = SplitSettingsPanel({})
    qtbot.addWidget(panel)
    defaults = DataConfig()
    assert panel.settings() == {"val_fraction": defaults.val_fraction, "test_fraction": defaults.test_fraction,
                                "seed": defaults.seed, "group_regex": None}
    for name in ("val_fraction", "test_fraction", "seed", "group_regex"):
        assert getattr(panel, name).toolTip() == help_for(DataConfig, name)
    assert "Split seed" in panel.seed.toolTip()
