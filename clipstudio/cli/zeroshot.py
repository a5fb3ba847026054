"""``clipstudio zeroshot DATA --model M``: zero-shot classification accuracy with class prompts."""

from __future__ import annotations

import argparse
import csv
import io

from clipstudio.cli.args import (
    add_clinical_args,
    add_data_args,
    add_eval_args,
    add_model_args,
    add_prompt_args,
    config_from_args,
)
from clipstudio.cli.clinical import clinical_lines
from clipstudio.cli.console import (
    EXIT_OK,
    ProgressBars,
    report_problems,
    scored_payload,
    show_result,
    write_report_file,
)
from clipstudio.cli.processes import add_process_args, encode_together, launch, process_group, wants_launch
from clipstudio.cli.steps import (
    embedding_cache,
    load_data,
    load_model,
    pick_split,
    prompt_set,
    subgroup_grouping,
    with_metadata,
)
from clipstudio.engine.data.health import health_report
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.clinical_scoring import (
    calibrated_predictions,
    score_clinical,
    validation_part,
    with_subgroups,
)
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.report import check_report_path, render_report
from clipstudio.engine.storage.atomic import atomic_write_text

HELP = "zero-shot classification accuracy with class prompts"
# Wider confusion matrices wrap into noise in a terminal (5,000 classes would print 25 million cells).
CONFUSION_MATRIX_MAX_CLASSES = 30


def add_parser(sub) -> None:
    p = sub.add_parser("zeroshot", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_data_args(p)
    add_model_args(p)
    add_prompt_args(p)
    add_eval_args(p)
    add_clinical_args(p)
    p.add_argument("--predictions", metavar="CSV", help="also write per-image predictions to a CSV file")
    add_process_args(p, "share the encoding of the images among N processes on this machine, one per GPU; "
                        "the first scores them and writes the results")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.report:
        check_report_path(args.report)  # before minutes of scoring, not after
    if wants_launch(args):
        return launch(args)
    with process_group(cfg) as ranks:
        quiet = not ranks.is_main  # of several processes, the first reports on the data
        dataset = with_metadata(load_data(cfg, quiet=quiet), args, quiet=quiet)
        if not dataset.is_classification:
            raise DataError(f"{dataset.source or dataset.root}: zero-shot needs class labels for at least 2 "
                            f"classes (class folders, or a label column); this dataset has "
                            f"{len(dataset.class_names)}.")
        part = pick_split(dataset, cfg)
        grouping, grouped_samples = subgroup_grouping(args, part)
        prompts = prompt_set(cfg)
        model = load_model(cfg)
        store = EmbeddingStore(embedding_cache(cfg))
        if ranks.distributed:  # the processes encode the images together; the first keeps them in the store
            validation, _ = validation_part(dataset, cfg.data, part)
            for images in (part, validation):
                if images is not None:
                    encode_together(store, model, images.dataset.paths, cfg, ranks)
    if not ranks.is_main:
        return EXIT_OK
    bars = ProgressBars()
    try:
        # The validation images are scored too: temperature, threshold and prediction sets are fitted on them.
        scored = score_clinical(store, model, dataset, prompts, cfg.data, part,
                                coverage=cfg.eval.coverage, operating_point=cfg.eval.operating_point,
                                batch_size=cfg.eval.batch_size, callback=bars)
    finally:
        bars.close()
    if grouping is not None and scored.clinical is not None:
        scored = with_subgroups(scored, grouping, dataset.root, samples=grouped_samples)
    result = scored.result
    if result.problems:
        report_problems(result.problems, "could not read")
    payload = scored_payload(scored.to_dict(), part, cfg.model.spec)
    if args.predictions:
        rows = result.predictions
        if scored.clinical is not None:  # as the app shows them: calibrated, at the operating point, with sets
            clinical = scored.clinical
            point = clinical.operating_point.point if clinical.operating_point is not None else None
            rows, _ = calibrated_predictions(result, clinical.calibration.temperature, point,
                                             sets=clinical.conformal.sets)
        write_predictions_csv(args.predictions, rows)
    if args.report and scored.clinical is not None:
        html = render_report(scored, part, dataset, health=health_report(dataset, check_images=False),
                             model_spec=cfg.model.spec, prompts=prompts,
                             settings={"coverage target": cfg.eval.coverage,
                                       "operating point rule": cfg.eval.operating_point,
                                       "subgroups by": grouping.by if grouping else None,
                                       "metadata file": args.metadata})
        write_report_file(args.report, html)
    show_result(args.json, payload, lambda: format_zero_shot(payload))
    return EXIT_OK


def format_zero_shot(d: dict) -> str:
    """The metrics, per-class table and confusion matrix as the terminal shows them."""
    out = io.StringIO()
    print(f"Zero-shot: {d['n']} images, {len(d['classes'])} classes, split '{d['split']}', model {d['model']}",
          file=out)
    ci = d.get("ci95") or {}

    def ci_text(key: str) -> str:
        lo_hi = ci.get(key)
        return f"  (95% CI {lo_hi[0]:.3f}-{lo_hi[1]:.3f})" if lo_hi else ""

    print(f"accuracy           {d['accuracy']:.3f}{ci_text('accuracy')}", file=out)
    print(f"balanced accuracy  {d['balanced_accuracy']:.3f}{ci_text('balanced_accuracy')}", file=out)
    if d.get("top5_accuracy") is not None:
        print(f"top-5 accuracy     {d['top5_accuracy']:.3f}", file=out)
    for line in clinical_lines(d):
        print(line, file=out)
    width = max(8, *(len(c) for c in d["classes"]))
    print(f"\n{'class':<{width}}  precision  recall     f1  support", file=out)
    for name in d["classes"]:
        m = d["per_class"][name]
        print(f"{name:<{width}}  {m['precision']:>9.3f}  {m['recall']:>6.3f}  {m['f1']:>5.3f}  {m['support']:>7}",
              file=out)
    n_classes = len(d["classes"])
    if n_classes > CONFUSION_MATRIX_MAX_CLASSES:
        print(f"\nconfusion matrix: {n_classes} x {n_classes}, too wide to show here (it is in the --json output)",
              file=out)
        return out.getvalue().rstrip()
    print("\nconfusion matrix (rows: true, columns: predicted)", file=out)
    for name, row in zip(d["classes"], d["confusion_matrix"], strict=True):
        print(f"{name:<{width}}  " + " ".join(f"{v:>6}" for v in row), file=out)
    return out.getvalue().rstrip()


def write_predictions_csv(target: str, rows: list[dict]) -> None:
    """Per-image predictions: path, true and predicted class, whether they agree, the top-k probabilities,
    and the conformal prediction set when the rows carry one."""
    with_sets = any("set" in r for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "predicted", "correct", "top_k"] + (["prediction_set"] if with_sets else []))
    for r in rows:
        topk = "; ".join(f"{c}={p:.4f}" for c, p in r["topk"])
        row = [r["path"], r["true"], r["pred"], r["true"] == r["pred"], topk]
        writer.writerow(row + (["; ".join(r.get("set") or [])] if with_sets else []))
    atomic_write_text(target, buf.getvalue())
