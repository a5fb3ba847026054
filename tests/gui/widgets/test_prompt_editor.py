"""The prompt editor's "Prompts used" column: each cell shows its first prompt whole, wrapped, in every row."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from clipstudio.engine.prompts import PromptSet
from clipstudio.gui.widgets.prompt_editor import COL_USED, PromptEditor

CLASSES = ["basophil", "eosinophil", "erythroblast", "immature_granulocyte", "lymphocyte", "platelet"]
TEMPLATES = ["a medical image of {class_name}.", "a photo of {class_name}.", "{class_name}."]


def _rows_fit(editor: PromptEditor) -> list[int]:
    """The rows whose height cuts off some of their text (none when every cell is readable)."""
    QApplication.processEvents()
    table = editor.class_table
    return [r for r in range(table.rowCount()) if table.rowHeight(r) < table.sizeHintForRow(r)]


def test_prompts_used_shows_each_first_prompt_whole_and_the_rest_as_a_count(qtbot):
    editor = PromptEditor()
    qtbot.addWidget(editor)
    editor.resize(420, 600)
    editor.show()
    editor.set_class_names(CLASSES)
    editor.load_prompt_set(PromptSet(name="default", templates=TEMPLATES, class_texts={}))
    table = editor.class_table
    for row, name in enumerate(CLASSES):
        used, words = table.item(row, COL_USED), name.replace("_", " ")  # prompts read "immature granulocyte"
        assert used.text() == f"a medical image of {words}.\n(+2 more)"  # the same shape in every row
        assert f"• {words}." in used.toolTip()
    assert _rows_fit(editor) == []

    # A longer template, then a narrower and a wider window: the rows follow, none is cut off.
    editor.templates_edit.setPlainText("\n".join(["a stained blood smear under the microscope showing {class_name}.",
                                                   *TEMPLATES]))
    assert table.item(3, COL_USED).text().startswith("a stained blood smear under the microscope showing immature")
    assert _rows_fit(editor) == []
    editor.resize(300, 600)
    assert _rows_fit(editor) == []
    editor.resize(900, 600)
    assert _rows_fit(editor) == []
    heights = {table.rowHeight(r) for r in range(table.rowCount())}
    assert len(heights) <= 2  # wide enough: the rows look alike (only the longest name may take a line more)
