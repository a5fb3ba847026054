"""Re-scoring on the Prompts screen encodes only the texts an edit changed."""

from __future__ import annotations

import pytest

from clipstudio.gui.screens.prompt_screen import PromptScreen

CLASSES = {"red_cells": 3, "green_cells": 3, "blue_cells": 3}


@pytest.fixture
def screen(qtbot, make_class_folders, tmp_path, state_with):
    widget = PromptScreen(state_with(make_class_folders(tmp_path / "data", {"train": CLASSES, "val": CLASSES})))
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()
    assert not widget.busy()


def _evaluate(qtbot, screen):
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
    return blocker.args[0]


def test_rescoring_after_a_template_edit_encodes_only_that_templates_texts(qtbot, screen, tiny_model, monkeypatch):
    encoded = []
    real = tiny_model.encode_texts
    monkeypatch.setattr(tiny_model, "encode_texts", lambda texts: encoded.extend(texts) or real(texts))
    screen.templates_edit.setPlainText("a blood smear with {class_name}.\n{class_name}")
    first = _evaluate(qtbot, screen)
    assert len(encoded) == 6

    screen.templates_edit.setPlainText("a blood smear with {class_name}.\n{class_name} seen")
    second = _evaluate(qtbot, screen)
    assert sorted(encoded[6:]) == ["blue cells seen", "green cells seen", "red cells seen"]
    assert second.n == first.n == 9 and second.predictions == []
    assert "95% CI" in screen.ci_label.text()
