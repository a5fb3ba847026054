"""In-app help: plain-language explanations of the jargon, "Getting started" and the shortcuts.

Each ``Term`` has one plain sentence (the start of its tooltip) and a short explanation (the "What does
this mean?" dialog); for a training setting, the technical detail under both is the config field's own
help text (``engine.config.help_for``), the one written for ``--help``, so it is never written twice.
Every screen marks its jargon the same way: ``explain(key, widgets...)`` gives the widgets the term's
tooltip and returns the link to place beside them; ``explain_links`` is one row of links for a block
of figures (the Results summary).
"Getting started" is docs/WALKTHROUGH.md, bundled beside ``resources/`` (installer/clipstudio.spec),
rendered as markdown. The shortcut list is read from the window's own actions and shortcuts.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QImage, QKeySequence, QShortcut, QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMenu,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from clipstudio.engine.config import TrainConfig, help_for
from clipstudio.engine.storage.paths import resources_dir

EXPLAIN_LINK = "What does this mean?"
WALKTHROUGH_FILE = "WALKTHROUGH.md"
GUIDE_IMAGE_WIDTH = 720  # px: the walkthrough's screenshots are full windows


@dataclass(frozen=True)
class Term:
    """One piece of jargon: its name, a plain sentence, a short explanation, its config field if any."""

    title: str
    plain: str
    explanation: str
    config_path: str | None = None

    def technical(self) -> str:
        return help_for(TrainConfig, self.config_path) if self.config_path else ""

    def tooltip(self) -> str:
        """The plain sentence, then the config field's technical help text."""
        detail = self.technical()
        return f"{self.plain}\n\n{detail}" if detail else self.plain


TERMS: dict[str, Term] = {
    "learning_rate": Term(
        "Learning rate",
        "How big a change the model makes to itself after each batch of images.",
        "Too large and the model forgets what it already knew or never settles; too small and it learns "
        "very slowly. Leave it blank to use the method's tested default.",
        "learning_rate",
    ),
    "epochs": Term(
        "Epochs",
        "How many times training goes through all the training images.",
        "More epochs give the model more chances to learn, but also more chances to memorise the training "
        "images instead of learning what generalises. Watch the validation curve: when it stops improving, "
        "more epochs do not help.",
        "epochs",
    ),
    "batch_size": Term(
        "Batch size",
        "How many images the model looks at together before it updates itself.",
        "Larger batches give steadier updates and, for this kind of model, more examples to compare each "
        "image with, but need more memory. Lower it if training runs out of memory.",
        "batch_size",
    ),
    "steps": Term(
        "Total steps",
        "How many updates the whole run makes, whatever the number of epochs.",
        "Normally each epoch goes through the training images once, so the epochs decide how long training "
        "runs. With a number of steps set, the run makes that many updates (a few more when they do not "
        "divide evenly among the epochs), going through the images as often as it takes, and the epochs "
        "only decide how often it checks itself on the validation images. Recipes such as CLIP-LoRA are defined by their number of steps.",
        "steps",
    ),
    "warmup_steps": Term(
        "Warm-up steps",
        "The first training steps start with small changes that grow to the full learning rate.",
        "At the start the model has not yet adjusted to your images, and large changes can spoil what it "
        "already knows. Warm-up eases it in: the learning rate rises from zero over these steps, then "
        "slowly falls for the rest of the run.",
        "warmup_steps",
    ),
    "weight_decay": Term(
        "Weight decay",
        "A gentle pull that keeps the model's numbers small, so it memorises the training images less.",
        "A model can learn the training images by heart, including their noise, and then do worse on new "
        "images. Weight decay discourages that. The default suits most datasets; raise it a little if the "
        "validation results get worse while the training loss keeps falling.",
        "weight_decay",
    ),
    "loss": Term(
        "Multi-positive loss",
        "How training scores a match: with multi-positive, images of the same class count as matching "
        "each other's text.",
        "Training shows the model batches of images and texts and rewards it for matching each image with "
        "its own text. With class data, several images in a batch share a class and therefore a text: the "
        'multi-positive loss treats all of them as correct matches. "Plain CLIP" treats only the one '
        "paired text as correct, as in the original CLIP training.",
        "loss",
    ),
    "amp": Term(
        "Mixed precision",
        "Computes with shorter numbers where that is safe, which is faster and uses less memory.",
        "Most of the arithmetic is done with 16-bit numbers instead of 32-bit ones; the parts that need the "
        "accuracy stay 32-bit. Results are practically the same. Turn it off only if training becomes "
        "unstable (the loss jumps to very large values or 'nan').",
        "amp",
    ),
    "grad_accum": Term(
        "Gradient accumulation",
        "Adds up several batches before the model updates itself, as if the batch were larger.",
        "When a larger batch does not fit in memory, the model can look at several smaller batches in turn "
        "and update once, with their combined lesson. 1 means an update after every batch.",
        "grad_accum",
    ),
    "lora_rank": Term(
        "LoRA rank",
        "How much the small LoRA add-ons can learn: higher learns more but can memorise more.",
        "LoRA leaves the model itself unchanged and trains small add-on layers beside it. The rank is their "
        "size: 4 to 16 suits most datasets. Smaller datasets do better with smaller ranks.",
        "lora.rank",
    ),
    "lora_alpha": Term(
        "LoRA alpha",
        "How strongly the LoRA add-ons change the model's output.",
        "The add-ons' effect is scaled by alpha divided by the rank. Keep alpha equal to the rank (a scale "
        "of 1) unless you have a reason to change it.",
        "lora.alpha",
    ),
    "lora_dropout": Term(
        "LoRA dropout",
        "Randomly ignores a small share of the add-ons' inputs while training, so they memorise less.",
        "Leaving out a random few inputs at each step forces the add-ons to learn patterns that do not "
        "depend on any single detail. 0.05 (5 %) is a common choice.",
        "lora.dropout",
    ),
    "probe_prior": Term(
        "Linear probe penalty",
        "What the linear probe falls back on when it has few images: what the prompts say, or nothing.",
        "The linear probe learns one weight per class and image feature. A penalty keeps those weights "
        "from following every quirk of the training images. \"The prompts\" pulls them towards the "
        "zero-shot classifier your class prompts make, so with a handful of images per class the probe "
        "stays close to zero-shot and improves on it; \"zero\" is plain logistic regression, as a "
        "statistician would fit it. \"Automatic\" uses the prompts only if they do better than chance on "
        "your validation images. Each epoch tries a weaker penalty; the validation images pick the best.",
        "probe.prior",
    ),
    "patience": Term(
        "Early stopping",
        "Stops training when the validation result has not improved for this many epochs.",
        "Training longer than useful wastes time and can make the model worse on new images. With early "
        "stopping on, training ends once the validation result stops improving; the best model so far is "
        "kept either way. Off: train for all the epochs.",
        "early_stopping.patience",
    ),
    "min_delta": Term(
        "Minimum improvement",
        "How much better an epoch must be than the best so far to count as an improvement.",
        "Tiny ups and downs are noise. With a minimum improvement above 0, early stopping only counts "
        "epochs that are clearly better.",
        "early_stopping.min_delta",
    ),
    "monitor": Term(
        "Monitored result",
        "Which validation result decides the best model and early stopping.",
        "Validation accuracy (balanced across classes) is what you usually care about. Validation loss "
        "also reflects how confident the model is, and changes more smoothly.",
        "early_stopping.monitor",
    ),
    "cv_folds": Term(
        "Cross-validation",
        "Trains several models, each checked on a different part of the images, and reports their average.",
        "With few images, one validation set can be lucky or unlucky. Cross-validation splits the "
        "training images into parts (folds), trains once per fold with that fold held back for checking, "
        "and reports the mean and spread of the results. It takes as many times longer as there are folds.",
        "cv.n_splits",
    ),
    "wise_ft": Term(
        "WiSE-FT",
        "Blends the fine-tuned model with the model it started from, to keep some of what the original knew.",
        "Fine-tuning makes a model better on your images but can make it forget general knowledge. WiSE-FT "
        "averages the two models' weights: a mix of 0 is the starting model, 1 the fine-tuned one. A mix "
        "in between is often nearly as good on your images and more robust on unusual ones.",
    ),
    "logit_scale": Term(
        "Logit scale",
        "How sharply the model turns its similarity scores into probabilities.",
        "The model scores how well an image matches each text. The logit scale multiplies these scores "
        "before they become probabilities: a large scale makes the model sound very sure of its first "
        "choice, a small one spreads the probability over several classes. It is learned during training.",
    ),
    "embed_dim": Term(
        "Embedding size",
        "How many numbers the model uses to describe each image and each text.",
        "The model turns every image and every text into a list of numbers (an embedding) and compares "
        "those lists. More numbers can hold finer detail; the size is fixed by the model and is not a "
        "measure of quality on its own.",
    ),
    "max_text_tokens": Term(
        "Max text tokens",
        "The longest text the model can read, counted in word pieces.",
        "Texts are cut into word pieces (tokens): a common word is one piece, a rare medical word "
        "several. Anything beyond this many pieces is ignored, so keep prompts and captions short.",
    ),
    "balanced_accuracy": Term(
        "Balanced accuracy",
        "The average of the per-class accuracies, so a rare class counts as much as a common one.",
        "Plain accuracy can look good when a model calls everything the most common class. Balanced "
        "accuracy scores each class on its own images and averages the classes, so ignoring a rare class "
        "shows. With equal class sizes the two are the same.",
    ),
    "confidence_interval": Term(
        "95 % confidence interval",
        "The range the true figure probably lies in, given how many images were scored.",
        "A score measured on a few hundred images is uncertain: on other images of the same kind it could "
        "come out somewhat higher or lower. The interval shows how much. Two models whose intervals "
        "overlap a lot may not really differ.",
    ),
    "auc": Term(
        "AUC",
        "How well the model's scores rank a class's images above the other images: 0.5 is guessing, 1 is perfect.",
        "AUC is the area under the ROC curve. It is the chance that a randomly picked image of the class "
        "gets a higher score for that class than a randomly picked image of another class. It does not "
        "depend on a threshold. With several classes, the macro AUC averages each class against the rest.",
    ),
    "operating_point": Term(
        "Operating point",
        "The probability above which an image is called positive; moving it trades sensitivity against specificity.",
        "The model gives every image a probability. A low threshold calls more images positive: fewer "
        "cases are missed (higher sensitivity) but more healthy images are flagged (lower specificity). "
        "The app starts at a threshold chosen on the validation images; the figures show what each "
        "threshold would do on the report images.",
    ),
    "calibration": Term(
        "Calibration error (ECE) and temperature",
        "How far the model's stated confidence is from how often it is actually right.",
        "A well calibrated model that says 80 % is right about 80 % of the time. The expected calibration "
        "error (ECE) is the average gap, so lower is better. Temperature scaling divides the model's scores "
        "by one number, T, fitted on the validation images: T above 1 makes the model less sure of itself, "
        "below 1 more sure. It never changes which class comes first, only how confident the model sounds.",
    ),
    "prediction_sets": Term(
        "Prediction sets",
        "For each image, the classes the model cannot rule out, sized so the true class is in the set at "
        "the target rate.",
        "Instead of one answer, the model names every class that is still plausible for the image. The "
        "sets are tuned on the validation images (split conformal prediction) so that the true class is in "
        "the set for about the target share of images (the coverage, e.g. 90 %). One class means the model "
        "is sure; a large set means the image is hard.",
    ),
    "paired_comparison": Term(
        "Paired comparison",
        "Compares the two models on the very same images, so a difference is not down to which images were used.",
        "Each image is scored by both models. The interval of the difference comes from re-drawing the "
        "images many times (a paired bootstrap); if it does not include 0, the change is unlikely to be "
        "chance. McNemar's test looks only at the images one model gets right and the other wrong: a small "
        "p (below 0.05) means the two models really differ.",
    ),
    "similarity": Term(
        "Similarity score",
        "How close an image is to your text or image in the model's eyes: higher is closer.",
        "The model turns images and texts into lists of numbers and measures the angle between them "
        "(cosine similarity). Scores are only comparable within one model and one search; they are not "
        "probabilities.",
    ),
    "label_quality": Term(
        "Label quality",
        "How well an image's label fits what a model that never saw the image thinks it shows: low is doubtful.",
        "The Explore screen trains five small models on the image features, each without one fifth of the "
        "images, and asks each about the images it did not see. An image scores near 1 when that model "
        "agrees with its label and near 0 when it is sure of another class. A low score is a reason to look "
        "at the image, not proof of a mistake: rare or unusual cases score low too.",
    ),
    "near_duplicate": Term(
        "Near-duplicates",
        "Images that are the same picture or almost, even when saved again, resized or compressed.",
        "Two images are near-duplicates when the model's features for them are almost the same (the "
        "similarity slider) and, with \"Same picture only\", their pixels match too. A copy in both the "
        "training and the test images makes the test score look better than it is, so groups across "
        "splits are shown in red.",
    ),
    "outlier_score": Term(
        "Outlier score",
        "How far an image is from the images most like it: high means unlike everything else.",
        "The average distance, in the model's features, from an image to its ten nearest images. High "
        "scores pick out images taken differently from the rest (another view, stain or device, a photo "
        "of a screen) that may not belong in the dataset.",
    ),
}


def explanation_html(key: str) -> str:
    """The "What does this mean?" text of a term, as rich text."""
    term = TERMS[key]
    text = f"<p><b>{html.escape(term.plain)}</b></p><p>{html.escape(term.explanation)}</p>"
    if term.technical():
        text += f'<p style="color:#5f6670">Technical detail: {html.escape(term.technical())}</p>'
    return text


def show_explanation(parent: QWidget | None, key: str) -> QMessageBox:
    """Open the explanation of ``TERMS[key]`` (not blocking); returns the dialog."""
    box = QMessageBox(parent)
    box.setWindowTitle(TERMS[key].title)
    box.setIcon(QMessageBox.Icon.Information)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(explanation_html(key))
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def explain_link(key: str, text: str = EXPLAIN_LINK) -> QLabel:
    """A small "What does this mean?" link that opens the explanation of ``TERMS[key]``."""
    label = QLabel(f'<a href="{key}">{html.escape(text)}</a>')
    label.setObjectName("hint")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
    label.setToolTip(TERMS[key].plain)
    label.linkActivated.connect(lambda link: show_explanation(label.window(), link))
    return label


def explain(key: str, *widgets: QWidget, text: str = EXPLAIN_LINK) -> QLabel:
    """Give ``widgets`` the term's tooltip (its plain sentence first) and return its "What does this
    mean?" link (or ``text``), for a control or figure whose name is jargon."""
    for widget in widgets:
        widget.setToolTip(TERMS[key].tooltip())
    return explain_link(key, text)


def explain_links(links: dict[str, str], lead: str = "What do these mean?") -> QLabel:
    """One line of links for a block of figures, "What do these mean? AUC · ECE": ``links`` maps each
    term's key to its link text (the name the figures use)."""
    row = " · ".join(f'<a href="{key}">{html.escape(text)}</a>' for key, text in links.items())
    label = QLabel(f"{html.escape(lead)} {row}")
    label.setObjectName("hint")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
    label.setToolTip(terms_tooltip(list(links)))
    label.linkActivated.connect(lambda link: show_explanation(label.window(), link))
    return label


def terms_tooltip(keys: list[str]) -> str:
    """The plain sentences of several terms, one per line, for a widget that shows all of them."""
    return "\n".join(f"{TERMS[key].title}: {TERMS[key].plain}" for key in keys)


# --- Getting started -------------------------------------------------------------------------------


def docs_dir() -> Path:
    """The ``docs/`` folder: beside ``resources/`` in a checkout and in the PyInstaller bundle."""
    return resources_dir().parent / "docs"


def walkthrough_markdown() -> str:
    """docs/WALKTHROUGH.md's numbered steps under its title, for someone using the app.

    The file's opening (how it was made, how to regenerate it) and closing measurements are for
    developers; the steps between are the guide.
    """
    text = (docs_dir() / WALKTHROUGH_FILE).read_text(encoding="utf-8")
    steps = re.findall(r"^## \d+\..*?(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    intro = (
        "# Getting started\n\nA first session, step by step: open a folder of images, score the "
        "built-in model with text prompts, fine-tune it, and look at the results. The pictures are "
        "from a real session with BloodMNIST, a public set of blood-cell images in 8 classes.\n\n"
    )
    return intro + "".join(steps)


class GettingStartedDialog(QDialog):
    """docs/WALKTHROUGH.md's steps with their pictures, in a scrollable window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Getting started")
        self.resize(820, 700)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(False)
        try:
            markdown = walkthrough_markdown()
        except OSError as exc:
            markdown = f"The guide could not be read ({exc.strerror or exc}): {docs_dir() / WALKTHROUGH_FILE}"
        self.browser.setMarkdown(markdown)
        self._add_images(markdown)  # after setMarkdown, which clears the document's resources
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)

    def _add_images(self, markdown: str) -> None:
        """Register the pictures scaled to the window's width (they are full-window screenshots)."""
        for name in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", markdown):
            image = QImage(str(docs_dir() / name))
            if image.isNull():
                continue
            if image.width() > GUIDE_IMAGE_WIDTH:
                image = image.scaledToWidth(GUIDE_IMAGE_WIDTH, Qt.TransformationMode.SmoothTransformation)
            self.browser.document().addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)


# --- Keyboard shortcuts ----------------------------------------------------------------------------


def _plain(text: str) -> str:
    """A menu or button text without its mnemonic "&" and trailing "…"."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…. ")


def _screen_title(obj) -> str:
    """The title of the screen ``obj`` lives on ("" when it is not on one)."""
    while obj is not None:
        title = getattr(type(obj), "title", None)
        if isinstance(title, str):
            return f"{title} screen"
        obj = obj.parent()
    return ""


def window_shortcuts(window: QWidget) -> list[tuple[str, str, str]]:
    """(keys, what they do, where) for every shortcut of ``window``'s actions, shortcuts and buttons."""
    native = QKeySequence.SequenceFormat.NativeText
    rows: list[tuple[str, str, str]] = []
    for action in window.findChildren(QAction):
        menus = [m for m in action.associatedObjects() if isinstance(m, QMenu)]
        what = f"{_plain(menus[0].title())} › {_plain(action.text())}" if menus else _plain(action.text())
        for keys in action.shortcuts():
            rows.append((keys.toString(native), what, _screen_title(action) or "Anywhere"))
    for shortcut in window.findChildren(QShortcut):
        what = shortcut.whatsThis() or "(no description)"
        rows.append((shortcut.key().toString(native), what, _screen_title(shortcut) or "Anywhere"))
    for button in window.findChildren(QAbstractButton):
        if not button.shortcut().isEmpty():
            rows.append((button.shortcut().toString(native), _plain(button.text()), _screen_title(button)))
    unique = list(dict.fromkeys(row for row in rows if row[0]))
    return sorted(unique, key=lambda row: (row[2] != "Anywhere", row[2], row[1]))


class ShortcutsDialog(QDialog):
    """A table of the window's keyboard shortcuts."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = window_shortcuts(window)
        self.table = QTableWidget(len(self.rows), 3)
        self.table.setHorizontalHeaderLabels(["Keys", "What it does", "Where"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for r, row in enumerate(self.rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(560, min(640, 90 + 30 * len(self.rows)))
