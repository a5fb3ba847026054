"""``clipstudio eval RUN DATA``: a run's model before and after fine-tuning, scored on the same images."""

from __future__ import annotations

import argparse
import io
import sys

from clipstudio.cli.args import (
    add_clinical_args,
    add_data_args,
    add_eval_args,
    config_from_args,
    field_help,
    unit_interval,
)
from clipstudio.cli.clinical import clinical_lines, paired_lines
from clipstudio.cli.console import EXIT_OK, ProgressBars, show_result, write_report_file
from clipstudio.cli.steps import embedding_cache, load_data, pick_split, subgroup_grouping, with_metadata
from clipstudio.engine.config import WISE_ON_VALIDATION, ModelConfig
from clipstudio.engine.data.health import health_report
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.clinical_scoring import with_subgroups
from clipstudio.engine.evaluation.report import check_report_path, render_report
from clipstudio.engine.runs.layout import CALIBRATION_FILE, is_run_folder

HELP = "a run's model before and after fine-tuning, on the same images"


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("run", metavar="RUN", help="training run folder")
    add_data_args(p, optional=True)
    p.add_argument("--wise-alpha", type=_wise_alpha, metavar="A",
                   help="score the WiSE-FT interpolation (1-A)*start + A*fine-tuned instead (0-1); 'val' chooses "
                        "A on the run's validation images (balanced accuracy, or mean recall for pairs)")
    p.add_argument("--device", help=field_help(ModelConfig, "device"))
    add_eval_args(p, recall=True)
    add_clinical_args(p, "Default: the one stored in the run folder (an earlier eval chose it on validation), "
                         "else youden.")


def _wise_alpha(text: str) -> float | str:
    if text.strip().lower() == WISE_ON_VALIDATION:
        return WISE_ON_VALIDATION
    try:
        return unit_interval(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or '{WISE_ON_VALIDATION}' to choose it on validation") from None


def run(args: argparse.Namespace) -> int:
    from clipstudio.engine.evaluation.before_after import (  # deferred: torch; --help stays instant
        STORED_POINT,
        compare_run,
    )

    if not is_run_folder(args.run):
        raise ConfigError(f"{args.run}: not a training run folder (it has no run.json and config.json).")
    cfg = config_from_args(args)
    if not cfg.data.path:
        raise ConfigError("DATA is required: the images to score the run on (after RUN).")
    if args.report:
        check_report_path(args.report)  # before minutes of scoring, not after
    dataset = with_metadata(load_data(cfg), args)
    for flag, given in (("--report", args.report), ("--group", args.group), ("--group-by", args.group_by)):
        if given and not dataset.is_classification:
            raise ConfigError(f"{flag} needs class data; {cfg.data.path} has no class labels.")
    part = pick_split(dataset, cfg)
    grouping, grouped_samples = subgroup_grouping(args, part)
    bars = ProgressBars()
    try:
        result = compare_run(
            args.run,
            part.dataset,
            split=part.name,
            wise_alpha=args.wise_alpha,
            ks=tuple(cfg.eval.recall_k),
            cache=embedding_cache(cfg),
            batch_size=cfg.eval.batch_size,
            device=cfg.model.device,
            source=dataset,
            coverage=cfg.eval.coverage,
            operating_point=cfg.eval.operating_point if args.operating_point else None,
            callback=bars,
        )
    finally:
        bars.close()
    if result.operating_point_from == STORED_POINT:
        print(f"Applied the operating point stored in {args.run} ({CALIBRATION_FILE}, chosen on validation); "
              "--operating-point chooses a new one.", file=sys.stderr)
    if grouping is not None and result.clinical is not None and result.clinical.clinical is not None:
        # Subgroups of the trained model's scoring, on the same calibrated probabilities.
        result.clinical = with_subgroups(result.clinical, grouping, dataset.root, samples=grouped_samples)
        result.after["subgroups"] = result.clinical.clinical.subgroups.to_dict()
    if result.wise_choice is not None:
        choice = result.wise_choice
        print(f"Chose WiSE-FT alpha {choice.alpha:g} on the {choice.validation}: "
              f"{choice.metric.replace('_', ' ')} {choice.value:.3f} there.", file=sys.stderr)
    if result.calibration_saved is not None:
        print(f"Saved what was fitted on validation (temperature, operating point) to {result.calibration_saved}.",
              file=sys.stderr)
    show_result(args.json, result.to_dict(), lambda: format_before_after(result))
    if args.report and result.clinical is not None and result.clinical.clinical is not None:
        point = result.operating_point_from or cfg.eval.operating_point
        html = render_report(result.clinical, part, dataset, health=health_report(dataset, check_images=False),
                             run_dir=args.run, comparison=result,
                             settings={"coverage target": cfg.eval.coverage, "operating point from": point,
                                       "WiSE-FT alpha": _alpha_setting(result),
                                       "subgroups by": grouping.by if grouping else None,
                                       "metadata file": args.metadata})
        write_report_file(args.report, html)
    return EXIT_OK


_HEADLINES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "mean_recall": "mean recall",
}


def _alpha_setting(result) -> str | float | None:
    """The WiSE-FT alpha as the report's settings table shows it: with where it came from when chosen."""
    choice = result.wise_choice
    if choice is None:
        return result.after.get("wise_alpha")
    return f"{choice.alpha:g}, chosen on the {choice.validation}"


def format_before_after(result) -> str:
    """The before/after table: headline metrics, change, and per-class recall for class data."""
    out = io.StringIO()
    before, after = result.before_summary, result.after_summary
    unit = "classes" if result.kind == "zeroshot" else "captions"
    count = (
        len(result.before.get("classes", [])) if result.kind == "zeroshot" else result.before.get("n_texts")
    )
    print(f"Before/after on split '{result.split}': {before.get('n')} images, {count} {unit}", file=out)
    print(f"before: {result.before_label}", file=out)
    print(f"after:  {result.after_label}", file=out)
    keys = [k for k in before if k != "n"]
    width = max(18, *(len(_label(k)) for k in keys))
    print(f"\n{'metric':<{width}}  {'before':>7}  {'after':>7}  {'change':>7}", file=out)
    for key in keys:
        b, a = before.get(key), after.get(key)
        change = f"{a - b:+7.3f}" if a is not None and b is not None else f"{'-':>7}"
        print(f"{_label(key):<{width}}  {_num(b)}  {_num(a)}  {change}", file=out)
    if result.kind == "zeroshot" and result.after.get("per_class"):
        classes = result.before["classes"]
        cw = max(width, *(len(c) for c in classes))
        print(f"\n{'recall per class':<{cw}}  {'before':>7}  {'after':>7}", file=out)
        for name in classes:
            rb = result.before["per_class"][name]["recall"]
            ra = result.after["per_class"][name]["recall"]
            print(f"{name:<{cw}}  {_num(rb)}  {_num(ra)}", file=out)
    if result.kind == "zeroshot" and "auc" in result.after:
        print("\nafter (fine-tuned), clinical metrics:", file=out)
        for line in clinical_lines(result.after):
            print(line, file=out)
    if result.paired is not None:
        print("", file=out)
        for line in paired_lines(result.paired.to_dict()):
            print(line, file=out)
    if result.cancelled:
        print("\n(cancelled: partial results)", file=out)
    return out.getvalue().rstrip()


def _label(key: str) -> str:
    if key in _HEADLINES:
        return _HEADLINES[key]
    direction, _, k = key.partition("_")
    return f"{'image->text' if direction == 'i2t' else 'text->image'} {k}"


def _num(value: float | None) -> str:
    return f"{'-':>7}" if value is None else f"{value:>7.3f}"
