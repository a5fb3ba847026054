"""Training events: the statuses run folders record, and the metrics an epoch reports."""

from __future__ import annotations

import json

from clipstudio.engine.events import EpochEnded, TrainingStatus


def test_statuses_are_written_as_their_plain_names():
    assert json.dumps({"status": TrainingStatus.EARLY_STOPPED}) == '{"status": "early_stopped"}'
    assert TrainingStatus("cancelled") is TrainingStatus.CANCELLED


def test_only_completed_and_early_stopped_runs_finished_training():
    assert {s for s in TrainingStatus if s.finished} == {
        TrainingStatus.COMPLETED,
        TrainingStatus.EARLY_STOPPED,
    }


def _epoch(**val) -> EpochEnded:
    metrics = dict(val_loss=None, val_acc=None, val_balanced_acc=None, val_mean_recall=None) | val
    return EpochEnded(epoch=1, train_loss=0.5, train_acc=0.5, lr=1e-4, seconds=2.0, **metrics)


def test_an_epoch_reports_only_the_validation_metrics_it_has_in_a_fixed_order():
    classes = _epoch(val_balanced_acc=0.7, val_acc=0.8, val_loss=0.3)
    assert list(classes.val_metrics().items()) == [("val_loss", 0.3), ("val_acc", 0.8), ("val_balanced_acc", 0.7)]
    assert _epoch(val_mean_recall=0.4).val_metrics() == {"val_mean_recall": 0.4}
    assert _epoch().val_metrics() == {}  # no validation images
