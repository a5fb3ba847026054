"""The ``clipstudio`` command line: argparse over the engine, with the same config objects as the GUI.

User errors (``ClipStudioError``) print one line on stderr and exit 2; bugs keep their traceback.
Heavy imports (torch, transformers) happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipstudio import __version__
from clipstudio.engine.config import DataConfig, EvalConfig, ModelConfig, PromptConfig, StudioConfig
from clipstudio.engine.errors import ClipStudioError, ConfigError

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but its check failed (e.g. the demo's self-check)
EXIT_USAGE = 2  # bad arguments, bad data, no model: the user can fix it
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clipstudio",
        description="Adapt CLIP-style image-text models to your own medical images.",
        epilog="Run 'clipstudio COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"clipstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("inspect", help="check a dataset: counts, imbalance, unreadable files, duplicates, leakage")
    _add_data_args(p)
    p.add_argument("--model", default=None, metavar="M",
                   help="also count captions over this model's text token limit (default: skip)")
    p.add_argument("--json", metavar="FILE", help="write the health report as JSON ('-' for stdout)")

    p = sub.add_parser("zeroshot", help="zero-shot classification accuracy with class prompts")
    _add_data_args(p)
    _add_model_args(p)
    p.add_argument("--template", action="append", default=[], metavar="T",
                   help="prompt template containing {class_name}; repeat for an ensemble")
    p.add_argument("--class-texts", metavar="FILE",
                   help='JSON {"class": "text"} or {"class": ["text", ...]} overriding the templates')
    _add_eval_args(p)
    p.add_argument("--predictions", metavar="CSV", help="also write per-image predictions to a CSV file")

    p = sub.add_parser("retrieve", help="image-to-text and text-to-image Recall@K on image-caption pairs")
    _add_data_args(p)
    _add_model_args(p)
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], metavar="K", help="Recall@K cut-offs")
    _add_eval_args(p)

    p = sub.add_parser("search", help="find the images closest to a text, or to an image")
    _add_data_args(p)
    _add_model_args(p)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", metavar="QUERY", help="text query, e.g. 'a chest X-ray showing pneumonia'")
    q.add_argument("--image", metavar="PATH", help="query image")
    p.add_argument("--top", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--split", default=None, metavar="NAME", help="search only this split")
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")

    p = sub.add_parser("demo", help="headless end-to-end run on the bundled sample with the built-in model")
    p.add_argument("--model", default="builtin", metavar="M", help="model to demo (default: builtin)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--out", metavar="FOLDER", help="where to write the demo report (default: app data folder)")
    return parser


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="class folder, pairs folder, or JSON/JSONL/CSV annotation file")
    p.add_argument("--image-key", metavar="KEY", help="JSON key / column holding the image file")
    p.add_argument("--caption-key", metavar="KEY", help="JSON key / column holding the caption(s)")
    p.add_argument("--images-dir", metavar="DIR", help="folder image names resolve against")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths that point outside the dataset folder")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="M",
                   help="'builtin', a Hugging Face id (e.g. openai/clip-vit-base-patch32), or a model folder")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default=None, metavar="NAME",
                   help="evaluate this split (default: test, else val, else the whole dataset)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON ('-' for stdout)")


def config_from_args(args: argparse.Namespace) -> StudioConfig:
    """The one config tree, filled from parsed arguments (the GUI fills the same tree from its forms)."""
    cfg = StudioConfig(
        data=DataConfig(
            path=getattr(args, "data", ""),
            image_key=getattr(args, "image_key", None),
            caption_key=getattr(args, "caption_key", None),
            images_dir=getattr(args, "images_dir", None),
            allow_outside_root=getattr(args, "allow_outside_root", False),
        ),
        model=ModelConfig(spec=getattr(args, "model", None) or "builtin", device=getattr(args, "device", "auto")),
        prompts=PromptConfig(templates=list(getattr(args, "template", []) or []),
                             class_texts=getattr(args, "class_texts", None)),
        eval=EvalConfig(
            split=getattr(args, "split", None),
            batch_size=getattr(args, "batch_size", 64),
            recall_k=list(getattr(args, "k", [1, 5, 10])),
            use_cache=not getattr(args, "no_cache", False),
        ),
    )
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {cfg.eval.batch_size}.")
    if any(k < 1 for k in cfg.eval.recall_k):
        raise ConfigError(f"--k values must be at least 1, got {cfg.eval.recall_k}.")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    from clipstudio import commands

    try:
        return commands.run(args.command, args, config_from_args(args))
    except ClipStudioError as exc:
        print(f"clipstudio: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clipstudio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def write_json(target: str, payload: Any) -> None:
    """Write JSON to a file atomically, or to stdout for '-'."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if target == "-":
        print(text)
        return
    from clipstudio.engine.atomic import atomic_write_text

    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"--json {target}: is a folder; give a file name.")
    atomic_write_text(path, text + "\n")
