"""In-app help: plain explanations of the jargon, Help > Getting started, Help > Keyboard shortcuts."""

from __future__ import annotations

import re

from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel, QMessageBox

from clipstudio.engine.config import TrainConfig, help_for
from clipstudio.gui.help import EXPLAIN_LINK, TERMS, GettingStartedDialog, show_explanation, window_shortcuts
from clipstudio.gui.widgets.train_form import TrainForm

JARGON_FIELDS = ("warmup_steps", "weight_decay", "loss", "amp", "grad_accum", "lora_rank", "lora_alpha",
                 "lora_dropout", "patience", "min_delta", "monitor", "cv_folds")


def test_every_jargon_field_starts_its_tooltip_with_one_plain_sentence_and_has_a_link(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    links = {label.findChild(QLabel) or label for label in form.findChildren(QLabel) if EXPLAIN_LINK in label.text()}
    linked = {label.text().split('"')[1] for label in links}
    for name in JARGON_FIELDS:
        tip = form.field(name).toolTip()
        plain, _, technical = tip.partition("\n\n")
        assert plain == TERMS[name].plain and plain.count(". ") == 0 and plain.endswith(".")
        assert TERMS[name].config_path and help_for(TrainConfig, TERMS[name].config_path) in technical
        assert name in linked, f"{name} has no '{EXPLAIN_LINK}' link"


def test_the_link_opens_a_short_explanation_with_the_config_help_as_detail(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    form.show()
    [link] = [label for label in form.findChildren(QLabel) if 'href="weight_decay"' in label.text()]
    link.linkActivated.emit("weight_decay")
    boxes = [w for w in form.findChildren(QMessageBox) if w.isVisible()]
    assert len(boxes) == 1 and boxes[0].windowTitle() == "Weight decay"
    assert "memorises" in boxes[0].text() and "AdamW decoupled weight decay" in boxes[0].text()
    boxes[0].close()


def test_terms_outside_the_train_form_explain_themselves(qtbot):
    box = show_explanation(None, "wise_ft")
    assert "starting model" in box.text() and "Technical detail" not in box.text()
    box.close()


def test_getting_started_shows_the_walkthrough_steps_with_pictures_not_the_developer_notes(qtbot):
    dialog = GettingStartedDialog()
    qtbot.addWidget(dialog)
    text = dialog.browser.toPlainText()
    assert text.startswith("Getting started")
    assert "Drop the folder on the window" in text and "Search by text" in text
    assert "Regenerate with" not in text and "Responsiveness" not in text
    image = dialog.browser.document().resource(QTextDocument.ResourceType.ImageResource,
                                               QUrl("walkthrough/01_data_dropped.png"))
    assert image is not None and not image.isNull() and image.width() <= 720


def test_help_menu_opens_getting_started_and_lists_the_real_shortcuts(main_window):
    help_menu = next(a.menu() for a in main_window.menuBar().actions() if a.text() == "&Help")
    texts = [a.text() for a in help_menu.actions()]
    assert "&Getting started" in texts and "&Keyboard shortcuts" in texts
    guide = main_window.show_getting_started()
    assert guide.isVisible()
    guide.close()
    dialog = main_window.show_shortcuts()
    rows = {(keys, what) for keys, what, _where in dialog.rows}
    assert ("Ctrl+O", "File › Open dataset folder") in rows
    assert ("Ctrl+1", "View › Data") in rows and ("Ctrl+Q", "File › Quit") in rows
    assert ("Ctrl+R", "Start") in rows and ("Esc", "Stop training") in rows
    assert dialog.table.rowCount() == len(dialog.rows)
    dialog.close()


def test_shortcuts_come_from_the_window_itself(main_window):
    main_window.menuBar().addMenu("Extra").addAction("Do something new").setShortcut("Ctrl+Shift+K")
    keys = {keys: where for keys, _what, where in window_shortcuts(main_window)}
    assert keys["Ctrl+Shift+K"] == "Anywhere"
    assert keys["Ctrl+R"] == "Train screen"


def _linked_terms(widget) -> set[str]:
    """The terms ``widget`` links to with a "What does this mean?" link (or a row of term links)."""
    return {key for label in widget.findChildren(QLabel) for key in re.findall(r'href="(\w+)"', label.text())}


def _starts_plain(tip: str, key: str) -> bool:
    return tip.startswith(TERMS[key].plain) or f"{TERMS[key].title}: {TERMS[key].plain}" in tip


def test_jargon_on_results_model_prompts_and_retrieval_has_a_plain_tooltip_and_a_link(main_window):
    results = main_window.screen_for("results")
    assert {"wise_ft", "operating_point", "auc", "calibration", "prediction_sets", "paired_comparison",
            "balanced_accuracy", "confidence_interval"} <= _linked_terms(results)
    assert _starts_plain(results.alpha_slider.toolTip(), "wise_ft")
    assert _starts_plain(results.wise.alpha_label.toolTip(), "wise_ft")
    assert _starts_plain(results.tabs.tabToolTip(results.tabs.indexOf(results.wise)), "wise_ft")
    pages = results.clinical_pages
    assert _starts_plain(pages.operating_point.slider.toolTip(), "operating_point")
    assert _starts_plain(pages.curves.auc_label.toolTip(), "auc")
    assert _starts_plain(pages.calibration.summary.toolTip(), "calibration")
    assert _starts_plain(pages.calibration.conformal_label.toolTip(), "prediction_sets")
    for key in ("auc", "calibration", "prediction_sets", "balanced_accuracy", "confidence_interval"):
        assert _starts_plain(results.summary_label.toolTip(), key)

    model = main_window.screen_for("model")
    assert {"logit_scale", "embed_dim", "max_text_tokens"} <= _linked_terms(model)
    assert _starts_plain(model.info_labels["logit_scale"].toolTip(), "logit_scale")

    prompts = main_window.screen_for("prompts")
    assert {"balanced_accuracy", "confidence_interval"} <= _linked_terms(prompts)
    assert _starts_plain(prompts.balanced_label.toolTip(), "balanced_accuracy")

    retrieval = main_window.screen_for("retrieval")
    assert "similarity" in _linked_terms(retrieval)
    assert _starts_plain(retrieval.result_label.toolTip(), "similarity")


def test_every_term_has_one_plain_sentence_and_its_link_opens_it(main_window):
    for key, term in TERMS.items():
        assert term.plain.endswith(".") and term.plain.count(". ") == 0, key
    model = main_window.screen_for("model")
    [link] = [label for label in model.findChildren(QLabel) if 'href="logit_scale"' in label.text()]
    assert EXPLAIN_LINK in link.text()
    link.linkActivated.emit("logit_scale")
    boxes = [w for w in main_window.findChildren(QMessageBox) if w.isVisible()]
    assert len(boxes) == 1 and boxes[0].windowTitle() == "Logit scale"
    assert "probabilities" in boxes[0].text()
    boxes[0].close()
