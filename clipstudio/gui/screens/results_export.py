"""What the Results screen exports: the predictions as CSV, and where the user saves them or the report; and
the metadata file the user loads for subgroups."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from clipstudio.gui.settings import AppSettings

REPORT_HTML_FILTER = "Web page, opens offline (*.html)"
REPORT_PDF_FILTER = "PDF document (*.pdf)"


def predictions_csv(predictions: list[dict]) -> str:
    """CSV text: path, true, predicted, correct, the top-k class/probability pairs, and the conformal
    prediction set ("a; b") when the predictions carry one."""
    k = max((len(p.get("topk") or []) for p in predictions), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    with_sets = any("set" in p for p in predictions)
    header = ["path", "true", "predicted", "correct"]
    for i in range(1, k + 1):
        header += [f"top{i}_class", f"top{i}_probability"]
    writer.writerow(header + (["prediction_set"] if with_sets else []))
    for p in predictions:
        row = [p["path"], p["true"], p["pred"], "yes" if p["true"] == p["pred"] else "no"]
        topk = p.get("topk") or []
        for name, prob in topk:
            row += [name, f"{prob:.6f}"]
        row += ["", ""] * (k - len(topk))
        if with_sets:
            row.append("; ".join(p.get("set") or []))
        writer.writerow(row)
    return "\ufeff" + out.getvalue()  # the BOM makes Excel read the UTF-8 class names and paths right


def ask_csv_path(parent: QWidget) -> str:
    """The CSV file the user picks for the predictions ("" when cancelled); the folder is remembered."""
    settings = AppSettings()
    path, _ = QFileDialog.getSaveFileName(parent, "Export predictions", settings.dialog_path("predictions.csv"),
                                          "CSV files (*.csv)")
    if path:
        settings.remember_dialog_path(path)
    return path


def ask_metadata_path(parent: QWidget, folder: str = "") -> str:
    """The metadata CSV the user picks for the dataset's images ("" when cancelled), from ``folder`` (the
    dataset's, where such a file usually lies) or the last folder used; that folder is remembered."""
    settings = AppSettings()
    path, _ = QFileDialog.getOpenFileName(parent, "Load a metadata file", folder or settings.dialog_folder(),
                                          "CSV files (*.csv *.tsv);;All files (*)")
    if path:
        settings.remember_dialog_path(path)
    return path


def ask_report_path(parent: QWidget) -> str:
    """The report file the user picks, HTML or PDF ("" when cancelled); a bare name gets the type picked in
    the dialog. The folder is remembered."""
    settings = AppSettings()
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Export report", settings.dialog_path("evaluation_report.html"),
        f"{REPORT_HTML_FILTER};;{REPORT_PDF_FILTER}")
    if not path:
        return ""
    if not Path(path).suffix:  # a bare name: the type picked in the dialog
        path += ".pdf" if chosen == REPORT_PDF_FILTER else ".html"
    settings.remember_dialog_path(path)
    return path
