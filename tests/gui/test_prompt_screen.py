"""The Prompts screen: editing, scoring from cached embeddings, class-text files and prompt sets."""

from __future__ import annotations

import json

import pytest

from clipstudio.engine.prompts import PromptSet, load_class_texts
from clipstudio.gui.screens.prompt_screen import PromptScreen
from clipstudio.gui.state import AppState

CLASSES = {"red_cells": 3, "green_cells": 3, "blue_cells": 3}


@pytest.fixture
def state(make_class_folders, tmp_path, state_with):
    return state_with(make_class_folders(tmp_path / "data", {"train": CLASSES, "val": CLASSES}))


@pytest.fixture
def screen(open_screen, state):
    return open_screen(PromptScreen, state)


def _evaluate(qtbot, screen):
    with qtbot.waitSignal(screen.evaluated, timeout=30_000) as blocker:
        screen.evaluate()
    return blocker.args[0]


def test_class_table_lists_dataset_classes(screen):
    names = [screen.class_table.item(r, 0).text() for r in range(screen.class_table.rowCount())]
    assert names == ["blue_cells", "green_cells", "red_cells"]
    assert "blue cells" in screen.class_table.item(0, 2).toolTip()


def test_second_evaluate_after_prompt_edit_does_not_re_encode_images(qtbot, screen, tiny_model, monkeypatch):
    from clipstudio.engine.evaluation import embedding_store

    image_batches = []
    real_encode = tiny_model.encode_images
    monkeypatch.setattr(
        tiny_model, "encode_images", lambda px: image_batches.append(len(px)) or real_encode(px)
    )
    calls = []
    real_files = embedding_store.encode_image_files
    monkeypatch.setattr(
        embedding_store, "encode_image_files", lambda *a, **k: calls.append(1) or real_files(*a, **k)
    )

    first = _evaluate(qtbot, screen)
    assert first.n == 9  # the val split only
    assert "'val' split" in screen.split_label.text()
    assert screen.accuracy_label.text().endswith("%")
    assert "95% CI" in screen.ci_label.text()
    assert sum(image_batches) == 9 and len(calls) == 1

    screen.templates_edit.setPlainText("a blood smear with {class_name}.\n{class_name}")
    second = _evaluate(qtbot, screen)
    assert second.n == 9
    assert sum(image_batches) == 9 and len(calls) == 1  # texts re-encoded, images not


def test_ctrl_enter_evaluates(qtbot, screen):
    from PySide6.QtCore import Qt

    screen.show()
    screen.activateWindow()
    qtbot.waitUntil(screen.isActiveWindow)
    screen.templates_edit.setFocus()
    with qtbot.waitSignal(screen.evaluated, timeout=30_000):
        qtbot.keyClick(screen.templates_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_template_without_placeholder_is_flagged_and_not_scored(qtbot, screen):
    screen.templates_edit.setPlainText("a photo of {class_name}.\na photo of cells.")
    assert screen.template_problems() == ["a photo of cells."]
    assert "without {class_name}" in screen.template_status.text()
    assert "a photo of cells." in screen.template_status.text()
    assert screen.current_prompt_set() is None
    screen.evaluate()
    assert not screen.busy()
    assert "{class_name}" in screen.progress_label.text()


def test_valid_edit_becomes_the_active_prompt_set(qtbot, screen, state):
    screen.templates_edit.setPlainText("smear of {class_name}")
    qtbot.waitUntil(lambda: state.prompts.templates == ["smear of {class_name}"], timeout=5000)


def test_class_texts_import_export_round_trip(qtbot, screen, tmp_path):
    source = tmp_path / "texts.json"
    source.write_text(
        json.dumps(
            {
                "red_cells": "red blood cells",
                "blue_cells": ["blue one", "blue two"],
                "unknown": "not in the data",
            }
        ),
        encoding="utf-8",
    )
    assert screen.import_class_texts(str(source))
    assert screen.editor.class_texts()["blue_cells"] == ["blue one", "blue two"]
    assert "blue one" in screen.class_table.item(0, 2).toolTip()

    out = tmp_path / "out.json"
    assert screen.export_class_texts(str(out))
    exported = load_class_texts(out)
    assert exported["red_cells"] == ["red blood cells"]
    assert exported["blue_cells"] == ["blue one", "blue two"]
    assert exported["unknown"] == ["not in the data"]
    assert exported["green_cells"]  # template-only classes are spelled out

    screen.import_class_texts(str(out))
    assert screen.editor.class_texts() == exported


def test_prompt_set_comparison_has_one_row_per_set_and_use_applies_it(qtbot, screen, state):
    screen.templates_edit.setPlainText("a photo of {class_name}.")
    with qtbot.waitSignal(screen.compared, timeout=30_000):
        assert screen.save_as_set("plain")
    screen.templates_edit.setPlainText("a microscope image of {class_name}.\n{class_name}")
    with qtbot.waitSignal(screen.compared, timeout=30_000) as blocker:
        assert screen.save_as_set("ensemble")
    rows = blocker.args[0]
    assert [r["name"] for r in rows] == ["plain", "ensemble"]
    assert screen.comparison_table.rowCount() == 2
    assert [screen.comparison_table.item(r, 0).text() for r in range(2)] == ["plain", "ensemble"]
    assert screen.best_set_name() in {"plain", "ensemble"}

    screen.use_set("plain")
    assert screen.editor.templates() == ["a photo of {class_name}."]
    assert state.prompts == PromptSet(name="plain", templates=["a photo of {class_name}."], class_texts={})


def test_without_model_offers_builtin_and_without_dataset_says_so(qtbot, tmp_path):
    empty = AppState()
    widget = PromptScreen(empty)
    qtbot.addWidget(widget)
    assert "Open a dataset on the Data screen first" in widget.banner.label.text()
    assert not widget.banner.isHidden()
    widget.shutdown()


def test_scoring_screens_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import clipstudio.gui.screens.prompt_screen, clipstudio.gui.screens.results_screen\n"
        "import clipstudio.gui.screens.retrieval_screen\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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


def test_without_a_val_split_prompts_are_scored_on_images_carved_from_train_never_on_test(
    qtbot, make_class_folders, tmp_path, state_with
):
    root = make_class_folders(tmp_path / "split", {"train": {"a": 5, "b": 5}, "test": {"a": 4, "b": 4}})
    app_state = state_with(root)
    app_state.split_settings = {**app_state.split_settings, "val_fraction": 0.4, "seed": 1}
    widget = PromptScreen(app_state)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.evaluated, timeout=30_000) as blocker:
        widget.evaluate()
    widget.shutdown()
    assert blocker.args[0].n == 4  # 40% of the 10 training images, none of the 8 test images
    assert "validation part carved from the 'train' split (40%, seed 1)" in widget.split_label.text()
