"""The prompt editor: templates (one per line, an ensemble) and per-class texts that override them.

Lines without ``{class_name}`` are marked in place and make ``prompt_set()`` return None, so a
half-typed template never reaches scoring or training. Class texts import from and export to the
seed guide's JSON (``{"class": "text"}`` or ``{"class": ["text", ...]}``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.errors import ClipStudioError
from clipstudio.engine.prompts import (
    DEFAULT_TEMPLATES,
    PLACEHOLDER,
    PromptSet,
    load_class_texts,
    save_class_texts,
)
from clipstudio.gui.settings import AppSettings

COL_CLASS, COL_TEXTS, COL_USED = range(3)


def heading(text: str) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)
    return label


class TemplateHighlighter(QSyntaxHighlighter):
    """Marks every non-empty template line that lacks the {class_name} placeholder."""

    def __init__(self, document) -> None:
        super().__init__(document)
        self._bad = QTextCharFormat()
        self._bad.setBackground(QColor("#fde2e2"))
        self._bad.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self._bad.setUnderlineColor(QColor("#c62828"))

    def highlightBlock(self, text: str) -> None:
        if text.strip() and PLACEHOLDER not in text:
            self.setFormat(0, len(text), self._bad)


class _MultiLineDelegate(QStyledItemDelegate):
    """Edits a cell's texts one per line (Enter adds a line; clicking elsewhere commits)."""

    def createEditor(self, parent, option, index):
        editor = QPlainTextEdit(parent)
        editor.setTabChangesFocus(True)
        return editor

    def setEditorData(self, editor, index) -> None:
        editor.setPlainText(index.data(Qt.ItemDataRole.EditRole) or "")

    def setModelData(self, editor, model, index) -> None:
        model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor, option, index) -> None:
        rect = option.rect
        rect.setHeight(max(rect.height(), 90))
        editor.setGeometry(rect)


class PromptEditor(QWidget):
    edited = Signal()  # the user changed a template or a class's texts
    failed = Signal(str)  # a class-texts file could not be read or written (one sentence)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.set_name = "default"  # the name given to the editor's PromptSet
        self._class_names: list[str] = []
        self._extra_texts: dict[str, list[str]] = {}  # texts of classes not in the dataset, kept for export
        self._loading = False  # filling the widgets from code: not a user edit

        self.templates_edit = QPlainTextEdit()
        self.templates_edit.setPlaceholderText("a chest X-ray showing {class_name}.")
        self.templates_edit.setFixedHeight(120)
        self._highlighter = TemplateHighlighter(self.templates_edit.document())
        self.templates_edit.textChanged.connect(self._on_templates_edit_changed)
        self.template_status = QLabel()
        self.template_status.setWordWrap(True)
        reset = QPushButton("Reset to defaults")
        reset.clicked.connect(lambda: self.templates_edit.setPlainText("\n".join(DEFAULT_TEMPLATES)))

        self.class_table = QTableWidget(0, 3)
        self.class_table.setHorizontalHeaderLabels(["Class", "Own texts", "Prompts used"])
        self.class_table.horizontalHeaderItem(COL_TEXTS).setToolTip(
            "Texts written for this class, one per line (double-click to edit). They replace the templates "
            "for this class; leave empty to use the templates."
        )
        self.class_table.horizontalHeaderItem(COL_USED).setToolTip("What the model reads for each class; "
                                                                   "hover a cell for the full list.")
        self.class_table.setItemDelegateForColumn(COL_TEXTS, _MultiLineDelegate(self.class_table))
        self.class_table.setWordWrap(True)
        header = self.class_table.horizontalHeader()
        header.setSectionResizeMode(COL_CLASS, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_TEXTS, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_USED, QHeaderView.ResizeMode.Stretch)
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a single word wider than its column
        self.class_table.itemChanged.connect(self._on_class_table_item_changed)
        # The cells wrap: every row grows to its whole text, also when a column narrows or widens (once the
        # header has laid out all its sections: during the resize, the row heights would use old widths).
        self._fit_rows_timer = QTimer(self, singleShot=True, interval=0)
        self._fit_rows_timer.timeout.connect(self.class_table.resizeRowsToContents)
        header.sectionResized.connect(lambda *_args: self._fit_rows_timer.start())
        import_button = QPushButton("Import class texts…")
        import_button.clicked.connect(self._on_import_clicked)
        export_button = QPushButton("Export class texts…")
        export_button.clicked.connect(self._on_export_clicked)
        self.class_note = QLabel()
        self.class_note.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(heading("Templates"))
        hint = QLabel(f"One per line, each with {PLACEHOLDER}. Several lines form an ensemble: "
                      "their embeddings are averaged per class.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addWidget(self.templates_edit)
        row = QHBoxLayout()
        row.addWidget(self.template_status, 1)
        row.addWidget(reset)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(heading("Classes"), 1)
        row.addWidget(import_button)
        row.addWidget(export_button)
        layout.addLayout(row)
        layout.addWidget(self.class_table, 1)
        layout.addWidget(self.class_note)
        self._update_template_status()

    # --- reading the editor -----------------------------------------------------------------------

    def templates(self) -> list[str]:
        return [line.strip() for line in self.templates_edit.toPlainText().splitlines() if line.strip()]

    def template_problems(self) -> list[str]:
        """The template lines that lack {class_name}."""
        return [t for t in self.templates() if PLACEHOLDER not in t]

    def class_texts(self) -> dict[str, list[str]]:
        """Per-class texts from the table (classes left empty use the templates), plus imported extras."""
        texts = dict(self._extra_texts)
        for row in range(self.class_table.rowCount()):
            name = self.class_table.item(row, COL_CLASS).text()
            lines = [t.strip() for t in (self.class_table.item(row, COL_TEXTS).text() or "").splitlines()]
            lines = [t for t in lines if t]
            if lines:
                texts[name] = lines
            else:
                texts.pop(name, None)
        return texts

    def prompt_set(self, name: str | None = None) -> PromptSet | None:
        """The editor's prompts, or None while a template lacks {class_name}."""
        if self.template_problems():
            return None
        try:
            return PromptSet(name=name or self.set_name, templates=self.templates(), class_texts=self.class_texts())
        except ClipStudioError:
            return None

    # --- filling the editor -----------------------------------------------------------------------

    def load_prompt_set(self, prompts: PromptSet) -> None:
        self._loading = True
        try:
            self.set_name = prompts.name
            self.templates_edit.setPlainText("\n".join(prompts.templates))
            self._fill_class_table(prompts.class_texts)
        finally:
            self._loading = False
        self._update_template_status()
        self._update_previews()

    def set_class_names(self, names: list[str]) -> None:
        """Show these classes (a new dataset); texts of classes that stay are kept."""
        texts = self.class_texts()
        self._class_names = list(names)
        self._fill_class_table(texts)

    def _fill_class_table(self, class_texts: dict[str, list[str]]) -> None:
        was_loading, self._loading = self._loading, True
        names = set(self._class_names)
        self._extra_texts = {k: list(v) for k, v in class_texts.items() if k not in names}
        table = self.class_table
        table.setRowCount(0)
        for name in self._class_names:
            row = table.rowCount()
            table.insertRow(row)
            item = QTableWidgetItem(name)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(row, COL_CLASS, item)
            table.setItem(row, COL_TEXTS, QTableWidgetItem("\n".join(class_texts.get(name, []))))
            used = QTableWidgetItem()
            used.setFlags(used.flags() & ~Qt.ItemFlag.ItemIsEditable)
            used.setForeground(QColor("#555"))
            table.setItem(row, COL_USED, used)
        self._loading = was_loading
        self._update_previews()

    def _update_template_status(self) -> None:
        bad = self.template_problems()
        n = len(self.templates())
        if bad:
            shown = "; ".join(f"“{t}”" for t in bad[:3]) + (" …" if len(bad) > 3 else "")
            self.template_status.setText(
                f"<span style='color:#c62828'>{len(bad)} line(s) without {PLACEHOLDER}: {shown}</span>"
            )
        elif n == 0:
            self.template_status.setText("No templates: every class then needs its own texts.")
        else:
            self.template_status.setText(f"{n} template(s)" + (" (an ensemble)" if n > 1 else ""))

    def _update_previews(self) -> None:
        prompts = self.prompt_set()
        was_loading, self._loading = self._loading, True
        for row in range(self.class_table.rowCount()):
            name = self.class_table.item(row, COL_CLASS).text()
            used = self.class_table.item(row, COL_USED)
            try:
                texts = prompts.texts_for(name) if prompts is not None else []
            except ClipStudioError:
                texts = []
            if not texts:
                used.setText("(fix the templates)" if prompts is None else "(no texts)")
                used.setToolTip("")
                continue
            more = f"\n(+{len(texts) - 1} more)" if len(texts) > 1 else ""
            used.setText(texts[0] + more)
            used.setToolTip("Prompts for this class:\n" + "\n".join(f"• {t}" for t in texts))
        self._loading = was_loading
        self.class_table.resizeRowsToContents()

    def _on_templates_edit_changed(self) -> None:
        self._update_template_status()
        if not self._loading:
            self._update_previews()
            self.edited.emit()

    def _on_class_table_item_changed(self, item: QTableWidgetItem) -> None:
        if self._loading or item.column() != COL_TEXTS:
            return
        self._update_previews()
        self.edited.emit()

    # --- class texts files ------------------------------------------------------------------------

    def import_class_texts(self, path: str) -> bool:
        """Read {"class": "text"} / {"class": ["text", ...]} JSON into the class table."""
        try:
            texts = load_class_texts(path)
        except ClipStudioError as exc:
            self.failed.emit(str(exc))
            return False
        self._fill_class_table(texts)
        unknown = sorted(set(texts) - set(self._class_names))
        note = f"Imported texts for {len(texts) - len(unknown)} class(es)."
        if unknown:
            note += f" Not in this dataset (kept for export): {', '.join(unknown[:5])}"
            note += " …" if len(unknown) > 5 else ""
        self.class_note.setText(note)
        self.edited.emit()
        return True

    def export_class_texts(self, path: str) -> bool:
        """Write the class texts JSON: every class's own texts, or its filled-in templates."""
        prompts = self.prompt_set()
        texts = self.class_texts()
        if prompts is not None:  # spell out template-only classes too, so the file stands alone
            for name in self._class_names:
                texts.setdefault(name, prompts.texts_for(name))
        try:
            save_class_texts(path, texts)
        except OSError as exc:
            self.failed.emit(f"Can't write {path}: {exc.strerror or exc}.")
            return False
        return True

    def _on_import_clicked(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        settings = AppSettings()
        path, _ = QFileDialog.getOpenFileName(self, "Import class texts", settings.dialog_folder(),
                                              "JSON files (*.json)")
        if path:
            settings.remember_dialog_path(path)
            self.import_class_texts(path)

    def _on_export_clicked(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        settings = AppSettings()
        path, _ = QFileDialog.getSaveFileName(self, "Export class texts", settings.dialog_path("class_texts.json"),
                                              "JSON files (*.json)")
        if path:
            settings.remember_dialog_path(path)
            self.export_class_texts(path)
