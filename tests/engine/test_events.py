"""Training statuses: what run folders record, and which of them count as finished training."""

from __future__ import annotations

import json

from clipstudio.engine.events import TrainingStatus


def test_statuses_are_written_as_their_plain_names():
    assert json.dumps({"status": TrainingStatus.EARLY_STOPPED}) == '{"status": "early_stopped"}'
    assert TrainingStatus("cancelled") is TrainingStatus.CANCELLED


def test_only_completed_and_early_stopped_runs_finished_training():
    assert {s for s in TrainingStatus if s.finished} == {
        TrainingStatus.COMPLETED,
        TrainingStatus.EARLY_STOPPED,
    }
