"""What the app remembers: the folder file dialogs start in, and short names for recent paths."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from clipstudio.gui.settings import AppSettings, documents_folder, short_name


def test_dialogs_start_in_documents_then_in_the_folder_last_used(tmp_path):
    settings = AppSettings()
    assert settings.dialog_folder() == documents_folder()
    assert os.path.isdir(documents_folder())
    chosen = tmp_path / "exports" / "predictions.csv"
    chosen.parent.mkdir()
    settings.remember_dialog_path(str(chosen))
    assert AppSettings().dialog_folder() == str(chosen.parent)  # remembered across restarts
    assert AppSettings().dialog_path("report.html") == str(chosen.parent / "report.html")
    chosen.parent.rmdir()  # a folder that is gone: back to Documents
    assert AppSettings().dialog_folder() == documents_folder()


def test_short_names_keep_the_parent_folder():
    assert short_name("/data/bloodmnist/folders") == str(Path("bloodmnist", "folders"))
    assert short_name("/data/pneumoniamnist/folders/") == str(Path("pneumoniamnist", "folders"))


def test_csv_export_dialog_opens_in_the_last_used_folder(qtbot, monkeypatch, tmp_path, app_state):
    from clipstudio.gui.screens.results_screen import ResultsScreen

    screen = ResultsScreen(app_state)
    qtbot.addWidget(screen)
    screen.last_result = object()  # something to export
    starts = []

    def fake_save(parent, title, start, filters):
        starts.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    assert not screen.export_csv()
    assert starts == [str(Path(documents_folder()) / "predictions.csv")]
    AppSettings().remember_dialog_path(str(tmp_path / "old.csv"))
    screen.export_csv()
    assert starts[-1] == str(tmp_path / "predictions.csv")
    screen.shutdown()
