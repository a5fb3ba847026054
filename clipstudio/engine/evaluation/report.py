"""The evaluation report: one self-contained HTML file that opens offline, for a reader who was not there.

It holds the dataset and its health findings, which images each figure comes from, the model and
every setting, the training curves of a run, each metric with its CI, the ROC and reliability
charts (inline SVG, ``report_html``), the operating point, conformal sets, subgroups, a few
misclassified images (small JPEG thumbnails as data: URIs), the before/after comparison of a run,
the software version and date, and the fixed statement that this is research software.

Nothing in the file points outside it: no stylesheet, script, font or image is fetched. Every
string that came from a user (class names, paths, prompts, settings) is escaped.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from clipstudio import __version__
from clipstudio.engine.config import to_dict
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.data.health import HealthReport
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.bootstrap import Estimate
from clipstudio.engine.evaluation.clinical_scoring import ClinicalScoring
from clipstudio.engine.evaluation.report_html import (
    PALETTE,
    Series,
    bullet_list,
    legend,
    line_chart,
    table,
    thumbnail,
)
from clipstudio.engine.evaluation.split_policy import EvaluationPart
from clipstudio.engine.prompts import PromptSet, run_prompt_set
from clipstudio.engine.runs.layout import read_history, read_run_config
from clipstudio.engine.storage.atomic import atomic_write_text

if TYPE_CHECKING:
    from clipstudio.engine.evaluation.before_after import BeforeAfter

__all__ = ["RESEARCH_STATEMENT", "SECTIONS", "check_report_path", "is_pdf_report", "render_report", "write_report"]

RESEARCH_STATEMENT = (
    "CLIP Studio is research software. It is not a medical device, it has not been cleared or approved by any "
    "regulator, and its results must not be used for diagnosis, treatment or any other clinical decision."
)
# Section ids in the order they appear; "training" needs a run, "operating-point" a binary task,
# "subgroups" subgroup labels and "comparison" a before/after evaluation.
SECTIONS = (
    "dataset", "split-policy", "model", "training", "metrics", "confusion-matrix", "roc", "calibration",
    "operating-point", "conformal", "subgroups", "errors", "comparison", "software", "statement",
)  # fmt: skip
THUMBS_PER_ROW = 4
MAX_EXAMPLES = 12  # misclassified images shown: enough to see a pattern, small enough to keep the file light
MAX_ROC_CURVES = len(PALETTE)  # more classes than colours: the chart would be unreadable

# line-height:1 on .figure and .pic: Qt's rich-text engine, which prints the PDF, stretches the line that
# holds an image by the page's line height, leaving a gap the size of the chart under it.
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1000px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#555;font-size:.92em}
.statement{border:2px solid #b00;background:#fff4f4;padding:10px 14px;font-weight:600}
.chart text{font-size:11px;fill:#333}.charts{display:flex;flex-wrap:wrap;gap:24px}
.legend{font-size:.9em;margin:4px 0 0 52px}.key{margin-right:14px;white-space:nowrap}
.swatch{letter-spacing:-1px}
.thumbs{border:none}td.thumb{border:none;vertical-align:top;width:150px;padding:0 12px 12px 0;font-size:.85em}
.card{text-align:left;word-wrap:break-word}
.thumb img{display:block;width:96px;height:96px;object-fit:contain;background:#000}
.warn{color:#a40}ul{margin-top:4px}.figure{margin:12px 0;line-height:1}.pic{line-height:1}
"""


def check_report_path(path: str | os.PathLike) -> Path:
    """The report's file, checked before any work: not a folder, in a folder that exists and can be written."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target}: is a folder; give a file name for the report (e.g. report.html).")
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(f"{target}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{target}: the folder {folder} can't be written to.")
    return target


def is_pdf_report(path: str | os.PathLike) -> bool:
    """Whether the report asked for is a PDF (its file name ends in .pdf; printed by ``clipstudio.printing``)
    rather than the HTML file."""
    return Path(path).suffix.lower() == ".pdf"


def write_report(path: str | os.PathLike, html: str) -> Path:
    """Write the report atomically; a folder or unwritable place is a ConfigError."""
    target = check_report_path(path)
    try:
        return atomic_write_text(target, html)
    except OSError as exc:
        raise ConfigError(f"{target}: the report can't be written ({exc.strerror or exc}).") from None


def render_report(
    scoring: ClinicalScoring,
    part: EvaluationPart,
    dataset: Dataset,
    *,
    health: HealthReport | None = None,
    model_spec: str | None = None,
    prompts: PromptSet | None = None,
    run_dir: str | os.PathLike | None = None,
    comparison: BeforeAfter | None = None,
    settings: dict | None = None,
    created: dt.datetime | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> str:
    """The report's HTML for ``scoring`` of the images in ``part`` (of ``dataset``).

    Zero-shot: ``model_spec`` and ``prompts``. A run: ``run_dir`` (its config, prompts and training
    curves) and ``comparison`` (its before/after evaluation). ``settings``: the evaluation's own
    (coverage, operating point rule, ...), shown with the model. ``health``: the dataset's health report.
    """
    if scoring.clinical is None:
        raise ValueError("the scoring was cancelled; there is nothing to report")
    created = created or dt.datetime.now().astimezone()
    title = f"Evaluation report: {dataset.source or dataset.root}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">{created:%Y-%m-%d %H:%M %Z} &middot; CLIP Studio {escape(__version__)}</p>',
        f'<p class="statement">{escape(RESEARCH_STATEMENT)}</p>',
        _section("dataset", "Dataset and its health", _dataset(dataset, health)),
        _section("split-policy", "Which images each figure comes from", _split_policy(scoring, part)),
        _section("model", "Model and method", _model(model_spec, prompts, run_dir, settings)),
    ]
    if run_dir is not None:
        body.append(_section("training", "Training curves", _training(run_dir)))
    clinical = scoring.clinical
    body += [
        _section("metrics", "Metrics", _metrics(scoring)),
        _section("confusion-matrix", "Confusion matrix", _confusion(scoring)),
        _section("roc", "ROC curve and AUC", _roc(scoring)),
        _section("calibration", "Calibration", _calibration(scoring)),
    ]
    if clinical.binary:
        body.append(_section("operating-point", "Operating point", _operating_point(scoring)))
    body.append(_section("conformal", "Conformal prediction sets", _conformal(scoring)))
    if clinical.subgroups is not None:
        body.append(_section("subgroups", "Subgroups", _subgroups(scoring)))
    body.append(_section("errors", "Example errors", _errors(scoring, max_examples)))
    if comparison is not None and comparison.paired is not None:
        body.append(_section("comparison", "Before and after fine-tuning", _comparison(comparison)))
    body += [
        _section("software", "Software", _software(created)),
        _section(
            "statement", "Not a medical device", f'<p class="statement">{escape(RESEARCH_STATEMENT)}</p>'
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# --- sections ----------------------------------------------------------------------------------------


def _dataset(dataset: Dataset, health: HealthReport | None) -> str:
    counts = health.classes if health is not None else _class_counts(dataset)
    out = [
        f"<p>{len(dataset)} images from <code>{escape(str(dataset.source or dataset.root))}</code> "
        f"({escape(dataset.format)}), {len(dataset.class_names)} classes.</p>",
        table(["class", "images"], [[name, n] for name, n in counts.items()]),
    ]
    if health is None:
        return "".join(out)
    if health.splits:
        rows = [[name, n if isinstance(n, int) else sum(n.values())] for name, n in health.splits.items()]
        out.append(table(["split", "images"], rows))
    facts = [
        f"unreadable files: {health.n_unreadable}",
        f"groups of identical files: {len(health.duplicates)}, of which across splits (leakage): {health.n_leakage}",
    ]
    if health.imbalance_ratio is not None:
        facts.append(f"largest to smallest class: {health.imbalance_ratio:.1f} to 1")
    out.append(bullet_list(facts))
    if health.warnings:
        out.append("<p><b>Health findings</b></p>" + bullet_list(health.warnings, css="warn"))
    else:
        out.append("<p>Health check: no findings.</p>")
    return "".join(out)


def _split_policy(scoring: ClinicalScoring, part: EvaluationPart) -> str:
    fitted = (
        f"{escape(scoring.validation.description)} (n = {len(scoring.validation.dataset)})"
        if scoring.validation is not None
        else f"nothing: {escape(scoring.validation_reason or 'no validation images')}"
    )
    return (
        f"<p><b>Reported on</b> (every figure below): the {escape(part.description)} "
        f"(split '{escape(part.name)}', n = {scoring.result.n}).</p>"
        f"<p><b>Fitted on</b> (temperature, operating point threshold, conformal cut-off): {fitted}.</p>"
        '<p class="note">Validation images are used to choose; test images only to report. Nothing is tuned '
        "on the images a figure is reported on, so the figures estimate how the model does on new images of "
        "the same kind.</p>"
    )


def _model(model_spec: str | None, prompts: PromptSet | None, run_dir, settings: dict | None) -> str:
    out = []
    if run_dir is not None:
        out.append(
            f"<p>Training run <code>{escape(str(run_dir))}</code>; all settings from its config.json:</p>"
        )
        out.append(table(["setting", "value"], _flatten(to_dict(read_run_config(run_dir)))))
        prompts = prompts or run_prompt_set(run_dir)
    if model_spec is not None:
        out.append(f"<p>Model: <code>{escape(model_spec)}</code> (zero-shot: no training).</p>")
    if prompts is not None:
        out.append("<p>Prompt templates (each class name is filled in; the class text is their mean):</p>")
        out.append(bullet_list(prompts.templates) if prompts.templates else "<p>(none)</p>")
        if prompts.class_texts:
            rows = [[name, "; ".join(texts)] for name, texts in prompts.class_texts.items()]
            out.append("<p>Hand-written class texts:</p>" + table(["class", "texts"], rows))
    given = {key: value for key, value in (settings or {}).items() if value is not None}  # not set: not shown
    if given:
        out.append("<p>Evaluation settings:</p>" + table(["setting", "value"], _flatten(given)))
    return "".join(out)


def _training(run_dir) -> str:
    history = read_history(run_dir)
    epochs = history.get("epoch") or []
    if not epochs:
        return "<p>The run has no finished epoch, so there are no curves.</p>"
    loss = [Series("training loss", epochs, history.get("train_loss", []), PALETTE[0], markers=True)]
    if history.get("val_loss"):
        loss.append(
            Series("validation loss", epochs, history["val_loss"], PALETTE[1], dashed=True, markers=True)
        )
    metric_keys = [
        k for k in history.get("val_keys", []) if k != "val_loss" and len(history.get(k) or []) == len(epochs)
    ]
    metrics = [
        Series(
            k.removeprefix("val_").replace("_", " "),
            epochs,
            history[k],
            PALETTE[(i + 2) % len(PALETTE)],
            markers=True,
        )
        for i, k in enumerate(metric_keys[:4])
    ]
    charts = [_figure(loss, "epoch", "loss", title="training and validation loss")]
    if metrics:
        charts.append(
            _figure(metrics, "epoch", "validation metric", y_range=(0.0, 1.0), title="validation metrics")
        )
    best = history.get("best_epoch")
    note = f"<p>Best epoch (by {escape(str(history.get('monitor_key')))}): {best}.</p>" if best else ""
    return f'<div class="charts">{"".join(charts)}</div>{note}'


def _metrics(scoring: ClinicalScoring) -> str:
    result, auc = scoring.result, scoring.clinical.auc
    rows = [
        ["accuracy", _num(result.accuracy), _ci(result.ci95.get("accuracy")), result.n],
        [
            "balanced accuracy",
            _num(result.balanced_accuracy),
            _ci(result.ci95.get("balanced_accuracy")),
            result.n,
        ],
    ]
    if result.top5_accuracy is not None and len(result.class_names) >= 6:
        rows.append(["top-5 accuracy", _num(result.top5_accuracy), "", result.n])
    macro_label = f"AUC ({auc.positive_class} vs rest)" if auc.positive_class else "macro AUC (one-vs-rest)"
    rows.append([macro_label, *_estimate(auc.macro_auc), auc.macro_auc.n])
    per_class = []
    for name in result.class_names:
        m = result.per_class.get(name, {})
        curves = auc.per_class.get(name)
        class_auc = _estimate(curves.auc) if curves is not None else ["", ""]
        per_class.append(
            [
                name,
                _num(m.get("precision")),
                _num(m.get("recall")),
                _num(m.get("f1")),
                m.get("support", 0),
                *class_auc,
            ]
        )
    return (
        table(["metric", "value", "95% CI", "n"], rows, left=1)
        + '<p class="note">Intervals: percentile bootstrap over the reported images. Balanced accuracy is the '
        "mean recall over the classes, so rare classes count as much as common ones.</p>"
        + table(["class", "precision", "recall", "F1", "images", "AUC", "AUC 95% CI"], per_class, left=1)
    )


def _confusion(scoring: ClinicalScoring) -> str:
    names, matrix = scoring.result.class_names, scoring.result.confusion_matrix
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for name, row in zip(names, matrix, strict=True):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            share = v / total
            colour = "0,114,178" if names[j] == name else "213,94,0"
            text = "#fff" if share > 0.6 else "#222"
            cells.append(f'<td style="background:rgba({colour},{share:.2f});color:{text}">{v}</td>')
        rows.append(f'<tr><th class="l">{escape(name)}</th>{"".join(cells)}</tr>')
    return (
        '<p class="note">Rows: true class; columns: predicted class (the most probable one). Shading: the share '
        "of the row's images; blue on the diagonal (right), orange off it (wrong).</p>"
        f'<table><tr><th class="l">true \\ predicted</th>{head}</tr>{"".join(rows)}</table>'
    )


def _roc(scoring: ClinicalScoring) -> str:
    auc = scoring.clinical.auc
    curves = [(name, c) for name, c in auc.per_class.items() if c.roc is not None]
    if not curves:
        reason = auc.macro_auc.reason or "no curve could be drawn"
        return f"<p>No ROC curve: {escape(reason)}.</p>"
    shown = curves[:MAX_ROC_CURVES]
    series = [
        Series(f"{name} (AUC {_num(c.auc.value)})", c.roc["fpr"], c.roc["tpr"], PALETTE[i % len(PALETTE)])
        for i, (name, c) in enumerate(shown)
    ]
    more = f" The first {len(shown)} of {len(curves)} classes are drawn." if len(curves) > len(shown) else ""
    return (
        _figure(
            series,
            "1 - specificity (false positive rate)",
            "sensitivity (true positive rate)",
            x_range=(0.0, 1.0),
            y_range=(0.0, 1.0),
            diagonal=True,
            title="ROC curve",
        )
        + '<p class="note">Each curve: one class against all the others, as the threshold slides from high to '
        "low. The AUC is the chance that a random image of the class scores above a random image of another "
        f"class: 0.5 is a coin toss, 1.0 a perfect ranking. The dashed diagonal is chance.{more}</p>"
    )


def _calibration(scoring: ClinicalScoring) -> str:
    cal = scoring.clinical.calibration
    rows = [
        ["ECE", _num(cal.ece), _num(cal.ece_after)],
        ["Brier score", _num(cal.brier), _num(cal.brier_after)],
        ["log loss", _num(cal.log_loss), _num(cal.log_loss_after)],
    ]
    series = [
        Series(
            "before (raw)",
            [b["confidence"] for b in cal.reliability],
            [b["accuracy"] for b in cal.reliability],
            PALETTE[1],
            markers=True,
        )
    ]
    if cal.reliability_after:
        series.append(
            Series(
                f"after (temperature {cal.temperature:.3f})",
                [b["confidence"] for b in cal.reliability_after],
                [b["accuracy"] for b in cal.reliability_after],
                PALETTE[0],
                markers=True,
            )
        )
    fitted = (
        f"Temperature {cal.temperature:.3f}, fitted on {cal.n_validation} validation images."
        if cal.temperature is not None
        else f"No temperature was fitted: {escape(cal.reason or 'no validation images')}."
    )
    return (
        table(["figure (lower is better)", "before", "after"], rows, left=1)
        + f"<p>{fitted}</p>"
        + _figure(
            series,
            "mean stated confidence",
            "share right",
            x_range=(0.0, 1.0),
            y_range=(0.0, 1.0),
            diagonal=True,
            title="reliability diagram",
        )
        + '<p class="note">Reliability diagram: the images are sorted into bins of equal size by the confidence '
        "of the predicted class; each dot is a bin. On the dashed diagonal the model is as sure as it is right; "
        "below it, over-confident. Temperature scaling changes how sure the model says it is, never which "
        f"class it predicts. n = {cal.n}.</p>"
    )


def _operating_point(scoring: ClinicalScoring) -> str:
    op = scoring.clinical.operating_point
    if op is None:
        return f"<p>No operating point: {escape(scoring.clinical.operating_point_reason or '')}.</p>"
    p = op.point
    rule = p.rule if p.target is None else f"{p.rule} {p.target:g}"
    rows = [
        [name, *_estimate(e), e.n]
        for name, e in (
            ("sensitivity", op.sensitivity),
            ("specificity", op.specificity),
            ("PPV", op.ppv),
            ("NPV", op.npv),
        )
    ]
    counts = table(
        ["", f"called {p.positive_class}", "called other"],
        [[f"truly {p.positive_class}", op.tp, op.fn], ["truly other", op.fp, op.tn]],
        left=1,
    )
    return (
        f"<p>An image is called <b>{escape(p.positive_class)}</b> when its probability of that class is at least "
        f"<b>{p.threshold:.4f}</b> (rule: {escape(rule)}, chosen on {p.n} validation images).</p>"
        + table(["figure", "value", "95% CI (Wilson)", "n"], rows, left=1)
        + counts
    )


def _conformal(scoring: ClinicalScoring) -> str:
    conf = scoring.clinical.conformal
    if conf.coverage is None:
        return (
            f"<p>Target coverage {_pct(conf.coverage_target)}. No prediction sets: "
            f"{escape(conf.reason or 'no validation images')}.</p>"
        )
    sizes = table(["set size (classes)", "images"], [[k, v] for k, v in sorted(conf.set_size_counts.items())])
    fitted = conf.calibrator.n if conf.calibrator is not None else 0
    return (
        f"<p>Target coverage {_pct(conf.coverage_target)}; achieved coverage on the reported images "
        f"<b>{_num(conf.coverage)}</b>; mean set size <b>{_num(conf.mean_set_size)}</b> classes "
        f"(n = {conf.n}; cut-off fitted on {fitted} validation images, score {escape(conf.score)}).</p>"
        + sizes
        + '<p class="note">Instead of one answer, each image gets the set of classes that are still plausible. '
        "If the validation and test images are alike, the set holds the true class at least as often as the "
        "target says. Large sets mean the model is unsure.</p>"
    )


def _subgroups(scoring: ClinicalScoring) -> str:
    report = scoring.clinical.subgroups
    rows = []
    for g in [report.overall, *report.groups]:
        cells = [g.group if g is not report.overall else "all images", g.n]
        for e in (g.accuracy, g.balanced_accuracy, g.macro_auc):
            cells.append(f"{_num(e.value)} {_ci(e.ci95)}".strip())
        cells.append(", ".join(m.replace("_", " ") for m in g.flagged))
        rows.append(cells)
    by = report.grouping or report.by
    grouping = f"<p>Subgroups by <b>{escape(by)}</b>.</p>" if by else ""
    flagged = [g.group for g in report.groups if g.flagged]
    verdict = (
        f'<p class="warn">Clearly worse than all images together: {escape(", ".join(flagged))}.</p>'
        if flagged
        else "<p>No subgroup is clearly worse than all images together.</p>"
    )
    return (
        grouping
        + table(["subgroup", "n", "accuracy", "balanced accuracy", "macro AUC", "clearly worse on"], rows, left=1)
        + verdict
        + '<p class="note">Each figure with its 95% bootstrap interval over the subgroup\'s own images. A subgroup '
        "is clearly worse on a figure when even the top of its interval lies below the figure for all images: "
        "unlikely to be chance. Small subgroups have wide intervals and are rarely flagged; that does not show "
        "they are fine, only that there are too few images to tell.</p>"
    )


def _errors(scoring: ClinicalScoring, limit: int) -> str:
    wrong = [p for p in scoring.result.predictions if p["true"] != p["pred"]]
    if not wrong:
        return "<p>No misclassified images.</p>"
    wrong.sort(key=lambda p: -(p["topk"][0][1] if p.get("topk") else 0.0))  # most confident mistakes first
    cards = []
    for p in wrong[:limit]:
        sure = f" ({p['topk'][0][1]:.2f})" if p.get("topk") else ""
        cards.append(
            f'<td class="thumb"><div class="card"><div class="pic">{thumbnail(p["path"])}</div>'
            f'<b>true:</b> {escape(str(p["true"]))}<br><b>predicted:</b> {escape(str(p["pred"]))}{sure}<br>'
            f'<span class="note">{escape(Path(p["path"]).name)}</span></div></td>'
        )
    # A table, not a wrapping flex box: the rich-text engine that prints the PDF has no flex layout (and
    # aligns a cell's text only through a block inside it, hence the card).
    rows = "".join(f"<tr>{''.join(cards[i:i + THUMBS_PER_ROW])}</tr>" for i in range(0, len(cards), THUMBS_PER_ROW))
    return (
        f"<p>{len(wrong)} of {scoring.result.n} images are misclassified; the {len(cards)} the model was most sure "
        "about are shown, with its probability of the predicted class (uncalibrated).</p>"
        f'<table class="thumbs">{rows}</table>'
    )


def _comparison(comparison: BeforeAfter) -> str:
    paired = comparison.paired
    rows = []
    for label, d in (
        ("accuracy", paired.accuracy),
        ("balanced accuracy", paired.balanced_accuracy),
        ("macro AUC", paired.macro_auc),
    ):
        diff = d.difference
        rows.append([label, _num(d.a), _num(d.b), _signed(diff.value), _ci(diff.ci95), d.verdict])
    m = paired.mcnemar
    return (
        f"<p>Before: <code>{escape(comparison.before_label)}</code>; after: "
        f"<code>{escape(comparison.after_label)}</code>; the same {paired.n} images.</p>"
        + table(["metric", "before", "after", "change", "95% CI (paired bootstrap)", "verdict"], rows, left=1)
        + f"<p>McNemar test ({escape(m.method)}): only before right on {m.only_a_right} images, only after right "
        f"on {m.only_b_right}; p = {m.p_value:.4g}.</p>"
    )


def _software(created: dt.datetime) -> str:
    return table(
        ["", ""],
        [["software", f"CLIP Studio {__version__}"], ["report written", f"{created:%Y-%m-%d %H:%M %Z}"]],
        left=2,
    )


# --- pieces ------------------------------------------------------------------------------------------


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{content}\n</section>'


def _figure(series: Sequence[Series], x_label: str, y_label: str, **kwargs) -> str:
    return (
        # A div, not <figure>: Qt's rich-text engine, which prints the PDF, lays <figure> out over the text before it.
        f'<div class="figure">{line_chart(series, x_label=x_label, y_label=y_label, **kwargs)}{legend(series)}</div>'
    )


def _flatten(tree: dict, prefix: str = "") -> list[list[str]]:
    rows = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append([name, ", ".join(map(str, value)) if isinstance(value, list) else str(value)])
    return rows


def _class_counts(dataset: Dataset) -> dict[str, int]:
    counts = dict.fromkeys(dataset.class_names, 0)
    for sample in dataset.samples:
        if sample.label is not None:
            counts[dataset.class_names[sample.label]] += 1
    return counts


def _estimate(e: Estimate) -> list[str]:
    if e.value is None:
        return ["-", e.reason or ""]
    return [_num(e.value), _ci(e.ci95) or (e.reason or "")]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


def _ci(lo_hi: Sequence[float] | None) -> str:
    return f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else ""
