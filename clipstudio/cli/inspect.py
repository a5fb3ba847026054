"""``clipstudio inspect DATA``: a dataset's health report (counts, imbalance, unreadable files, duplicates, leakage)."""

from __future__ import annotations

import argparse
import io

from clipstudio.cli.args import add_data_args, config_from_args
from clipstudio.cli.console import EXIT_OK, ProgressBars, show_result
from clipstudio.cli.steps import load_data, load_model
from clipstudio.engine.data import Dataset
from clipstudio.engine.data.health import health_report

HELP = "check a dataset: counts, imbalance, unreadable files, duplicates, leakage"


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_data_args(p)
    p.add_argument("--model", metavar="M",
                   help="also count captions over this model's text token limit (default: skip)")
    p.add_argument("--json", metavar="FILE", help="write the health report as JSON ('-' for stdout)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    dataset = load_data(cfg, quiet=True)
    count_tokens = max_tokens = None
    if args.model:
        model = load_model(cfg)
        count_tokens, max_tokens = model.count_tokens, model.max_text_tokens
    bars = ProgressBars()
    try:
        report = health_report(dataset, count_tokens=count_tokens, max_tokens=max_tokens, callback=bars)
    finally:
        bars.close()
    payload = report.to_dict()
    show_result(args.json, payload, lambda: format_health(payload, dataset))
    return EXIT_OK


def format_health(d: dict, dataset: Dataset) -> str:
    """The health report as the terminal shows it."""
    out = io.StringIO()
    src = dataset.source or dataset.root
    print(f"{src}", file=out)
    print(f"format: {d['format']}   images: {d['n_images']}   unreadable: {d['n_unreadable']}", file=out)
    if d.get("classes"):
        width = max(len(c) for c in d["classes"])
        splits = d.get("splits") or {}
        header = "".join(f"{s:>8}" for s in splits)
        print(f"\n{'class':<{width}}  {'total':>7}{header}", file=out)
        for name, n in d["classes"].items():
            per_split = "".join(f"{(splits[s] or {}).get(name, 0):>8}" for s in splits)
            print(f"{name:<{width}}  {n:>7}{per_split}", file=out)
        if d.get("imbalance_ratio") is not None:
            print(f"imbalance ratio (largest/smallest class): {d['imbalance_ratio']:.2f}", file=out)
    elif d.get("splits"):
        print("splits: " + ", ".join(f"{k} {v}" for k, v in d["splits"].items()), file=out)
    sizes = d.get("image_sizes") or {}
    if sizes.get("width"):
        w, h = sizes["width"], sizes["height"]
        print(f"image size: width {w['min']}-{w['max']} (median {w['median']}), "
              f"height {h['min']}-{h['max']} (median {h['median']})", file=out)
    caps = d.get("captions") or {}
    if caps.get("n"):
        line = f"captions: {caps['n']}, length {caps['chars']['min']}-{caps['chars']['max']} characters"
        if caps.get("n_over_token_limit") is not None:
            line += f"; {caps['n_over_token_limit']} over the model's token limit"
        print(line, file=out)
    dups = d.get("duplicates") or []
    if dups:
        print(f"duplicates: {len(dups)} group(s) of identical files, {d.get('n_leakage', 0)} across splits",
              file=out)
    for w in d.get("warnings") or []:
        print(f"warning: {w}", file=out)
    problems = d.get("problems") or []
    if problems:
        print(f"\n{len(problems)} problem(s):", file=out)
        for p in problems[:20]:
            print(f"  {p['path']}: {p['reason']}", file=out)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more (use --json)", file=out)
    return out.getvalue().rstrip()
