"""``clipstudio export RUN_OR_MODEL --format hf|onnx --output DIR``: a model for use outside CLIP Studio.

``hf`` writes a folder plain transformers loads; ``onnx`` the image and text encoders as ONNX plus
the classification head, checked with onnxruntime before the folder appears (needs
``pip install clipstudio[export]``).
"""

from __future__ import annotations

import argparse

from clipstudio.cli.console import EXIT_OK, show_result
from clipstudio.engine.export import FORMATS

HELP = "export a model or a run's model for transformers (hf) or onnxruntime (onnx)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". The folder is written in one step: a failed export "
        "leaves nothing behind.",
    )
    p.add_argument("model", metavar="RUN_OR_MODEL",
                   help="a training run folder, a model folder, a Hugging Face id, or 'builtin'")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="hf: a folder transformers loads; onnx: ONNX encoders + classification head "
                        "(needs pip install clipstudio[export])")
    p.add_argument("--output", required=True, metavar="DIR", help="the folder to create (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it already holds files")
    p.add_argument("--class", dest="classes", action="append", metavar="NAME",
                   help="a class of the ONNX head for a plain model (repeat; a run brings its own classes)")
    p.add_argument("--json", metavar="FILE", help="write a summary as JSON ('-' for stdout)")


def run(args: argparse.Namespace) -> int:
    from clipstudio.engine.export.model_export import export_model  # deferred: torch; `--help` stays instant

    result = export_model(args.model, args.format, args.output, overwrite=args.overwrite,
                          class_names=args.classes)  # fmt: skip
    payload = {"model": args.model, **result.to_dict()}
    show_result(args.json, payload, lambda: format_summary(payload))
    return EXIT_OK


def format_summary(d: dict) -> str:
    line = f"Exported {d['model']} ({d['model_kind']}) as {d['format']} to {d['output']} ({len(d['files'])} files)"
    if d["parity"]:
        p = d["parity"]
        line += f"; onnxruntime matches PyTorch (worst cosine: images {p['image_cosine']:.6f}, texts {p['text_cosine']:.6f})"
    if d["class_names"]:
        line += f"; head: {len(d['class_names'])} classes"
    return line + "."
