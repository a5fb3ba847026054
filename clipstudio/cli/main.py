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
from clipstudio.engine.config import (
    AUGMENTATIONS,
    LOSSES,
    MONITORS,
    TRAIN_METHODS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    PromptConfig,
    StudioConfig,
    TrainConfig,
    load_config,
)
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
    parser.add_argument("--selftest", action="store_true",
                        help="check this install offline and exit (same as 'clipstudio selftest')")
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

    _add_train_parser(sub)
    _add_eval_parser(sub)

    p = sub.add_parser("selftest", help="check this install offline: window, built-in model, zero-shot, training")
    p.add_argument("--report", metavar="FILE", help="where to write the JSON report (default: app data folder)")

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
                   help="'builtin', a Hugging Face id (e.g. openai/clip-vit-base-patch32), a model folder, "
                        "or a training run folder (its best checkpoint, else the latest)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default=None, metavar="NAME",
                   help="evaluate this split (default: test, else val, else the whole dataset)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON ('-' for stdout)")


def _add_train_parser(sub) -> None:
    # Every option defaults to None ("not given"), so a --config file's value survives unless the
    # flag is typed. Flag names follow the fine-tuning guide's train_clip.py.
    p = sub.add_parser(
        "train", help="fine-tune a model on class folders or image-caption pairs into a run folder",
        description="Fine-tune a model. Explicit flags override --config; Ctrl+C stops after the current "
                    "step, saves checkpoint_latest and exits 130 (continue with --resume-from RUN).",
    )
    arg = p.add_argument
    arg("--data", metavar="DATA", help="class folder, pairs folder, or JSON/JSONL/CSV annotation file")
    arg("--output", metavar="RUN", help="the run folder to create (default: a new folder under the app's runs)")
    arg("--config", metavar="FILE", help="TrainConfig JSON (e.g. a run's config.json); flags override it")
    arg("--model", metavar="M", help="model to start from: 'builtin', a Hugging Face id, a model or run folder")
    arg("--method", choices=TRAIN_METHODS, help="what trains (default full)")
    arg("--epochs", type=int, help="passes over the training images (default 10)")
    arg("--batch-size", type=int, help="images per step (default 32)")
    arg("--learning-rate", "--lr", type=float, help="peak learning rate (default: per method, e.g. 1e-5 for full)")
    arg("--weight-decay", type=float, help="AdamW weight decay (default 0.1)")
    arg("--warmup-steps", type=int, help="linear warm-up steps before the cosine decay (default 50)")
    arg("--img-size", type=int, help="training image size in pixels (default: the model's own)")
    arg("--augmentation", choices=AUGMENTATIONS, help="training-image augmentation (default minimal)")
    arg("--embed-dim", type=int, help="shared embedding size, only when a new dual encoder is created")
    arg("--temperature", type=float, help="initial temperature, only when a new dual encoder is created")
    arg("--no-amp", dest="amp", action="store_const", const=False, help="train in full fp32 precision")
    arg("--grad-accum", type=int, help="batches per optimizer step (default 1)")
    arg("--resume-from", metavar="RUN", help="continue a run from its checkpoint_latest, exactly")
    arg("--no-save-best", dest="save_best", action="store_const", const=False,
        help="keep only checkpoint_latest, no checkpoint_best")
    arg("--early-stopping-patience", type=int, metavar="N", help="stop after N epochs without improvement")
    arg("--early-stopping-min-delta", type=float, metavar="D", help="smallest change that counts (default 0)")
    arg("--early-stopping-monitor", choices=MONITORS, help="metric for early stopping and checkpoint_best")
    arg("--use-cv", dest="use_cv", action="store_const", const=True,
        help="k-fold cross-validation: one run per fold in OUTPUT/fold_<i>/ and OUTPUT/cv_summary.json")
    arg("--n-splits", type=int, metavar="K", help="folds for --use-cv (default 5)")
    arg("--random-state", type=int, help="seed of the fold assignment (default 42)")
    arg("--multi-config", metavar="FILE",
        help="sweep: JSON array of partial configs laid over these flags, e.g. "
             '[{"learning_rate": 1e-6}, {"learning_rate": 2e-6}]; runs go to OUTPUT/run_<i>/')
    arg("--text-template", action="append", metavar="T",
        help="class prompt template with {class_name} (or {}); repeat for an ensemble")
    arg("--class-texts-file", metavar="FILE", help='JSON {"class": "text"} or {"class": ["text", ...]}')
    arg("--val-fraction", type=float, help="validation share when the data has no val split (default 0.2)")
    arg("--group-regex", metavar="RE", help=r"keep each patient in one split/fold, e.g. '^(P\d+)_'")
    arg("--image-key", metavar="KEY", help="JSON key / column holding the image file")
    arg("--caption-key", metavar="KEY", help="JSON key / column holding the caption(s)")
    arg("--images-dir", metavar="DIR", help="folder image names resolve against")
    arg("--allow-outside-root", action="store_const", const=True,
        help="accept image paths that point outside the dataset folder")
    arg("--device", help="auto (CUDA GPU --gpu-id, then Apple MPS, then CPU), cpu, cuda[:N] or mps")
    arg("--gpu-id", type=int, help="which CUDA GPU with --device auto (default 0)")
    arg("--num-workers", type=int,
        help="image-decoding threads (default 2); threads, not processes, so safe on Windows")
    arg("--seed", type=int, help="seed of data order, augmentation and initialisation (default 42)")
    arg("--loss", choices=LOSSES, help="multi_positive (same-class images are positives) or clip")
    arg("--lora-rank", type=int, help="LoRA rank (default 8)")
    arg("--lora-alpha", type=float, help="LoRA alpha (default 8)")
    arg("--lora-dropout", type=float, help="LoRA dropout (default 0.05)")


def _add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="a run's model before and after fine-tuning, on the same images")
    p.add_argument("run", metavar="RUN", help="training run folder")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="class folder, pairs folder, or JSON/JSONL/CSV annotation file")
    p.add_argument("--image-key", metavar="KEY", help="JSON key / column holding the image file")
    p.add_argument("--caption-key", metavar="KEY", help="JSON key / column holding the caption(s)")
    p.add_argument("--images-dir", metavar="DIR", help="folder image names resolve against")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths that point outside the dataset folder")
    p.add_argument("--wise-alpha", type=float, metavar="A",
                   help="score the WiSE-FT interpolation (1-A)*start + A*fine-tuned instead (0-1)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], metavar="K", help="Recall@K cut-offs (pairs)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    _add_eval_args(p)


# TrainConfig field <- argparse dest, for flags that map one to one.
_TRAIN_FLAGS = {
    "method": "method", "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
    "weight_decay": "weight_decay", "warmup_steps": "warmup_steps", "img_size": "img_size",
    "augmentation": "augmentation", "embed_dim": "embed_dim", "temperature": "temperature", "amp": "amp",
    "grad_accum": "grad_accum", "resume_from": "resume_from", "save_best": "save_best", "loss": "loss",
    "seed": "seed", "num_workers": "num_workers", "gpu_id": "gpu_id", "output": "output",
    "early_stopping.patience": "early_stopping_patience", "early_stopping.min_delta": "early_stopping_min_delta",
    "early_stopping.monitor": "early_stopping_monitor", "cv.use_cv": "use_cv", "cv.n_splits": "n_splits",
    "cv.random_state": "random_state", "lora.rank": "lora_rank", "lora.alpha": "lora_alpha",
    "lora.dropout": "lora_dropout", "data.path": "data", "data.image_key": "image_key",
    "data.caption_key": "caption_key", "data.images_dir": "images_dir",
    "data.allow_outside_root": "allow_outside_root", "data.val_fraction": "val_fraction",
    "data.group_regex": "group_regex", "model.spec": "model", "model.device": "device",
    "prompts.class_texts": "class_texts_file",
}


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``clipstudio train``: --config (or the defaults), then every flag given."""
    if args.config:
        cfg = load_config(TrainConfig, args.config)
    elif args.resume_from:
        # Resuming needs no other flag: the run's own config, continued in its own folder.
        from clipstudio.engine.runs.load import read_run_config

        cfg = read_run_config(args.resume_from)
        cfg.output = args.resume_from
    else:
        cfg = TrainConfig()
    for field_path, dest in _TRAIN_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        *parents, name = field_path.split(".")
        target = cfg
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    if args.text_template:
        # The guide's templates use "{}"; ours name the placeholder.
        cfg.prompts.templates = [t if "{class_name}" in t else t.replace("{}", "{class_name}")
                                 for t in args.text_template]
    if cfg.cv.use_cv and cfg.cv.n_splits < 2:
        raise ConfigError(f"--n-splits must be at least 2 (got {cfg.cv.n_splits}).")
    cfg.validate()
    return cfg


def config_from_args(args: argparse.Namespace) -> StudioConfig:
    """The one config tree, filled from parsed arguments (the GUI fills the same tree from its forms)."""
    cfg = StudioConfig(
        data=DataConfig(
            path=getattr(args, "data", None) or "",
            image_key=getattr(args, "image_key", None),
            caption_key=getattr(args, "caption_key", None),
            images_dir=getattr(args, "images_dir", None),
            allow_outside_root=getattr(args, "allow_outside_root", False),
        ),
        model=ModelConfig(spec=getattr(args, "model", None) or "builtin",
                          device=getattr(args, "device", None) or "auto"),
        prompts=PromptConfig(templates=list(getattr(args, "template", []) or []),
                             class_texts=getattr(args, "class_texts", None)),
        eval=EvalConfig(
            split=getattr(args, "split", None),
            batch_size=_given(getattr(args, "batch_size", None), 64),
            recall_k=list(getattr(args, "k", None) or [1, 5, 10]),
            use_cache=not getattr(args, "no_cache", False),
        ),
    )
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {cfg.eval.batch_size}.")
    if any(k < 1 for k in cfg.eval.recall_k):
        raise ConfigError(f"--k values must be at least 1, got {cfg.eval.recall_k}.")
    return cfg


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def gui_unavailable_reason() -> str:
    """Why the window can't open here ("" when it can): no PySide6, or (on Linux) no display."""
    import importlib.util
    import os

    if importlib.util.find_spec("PySide6") is None:
        return "The CLIP Studio window needs PySide6, which is not installed."
    display_vars = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    if sys.platform.startswith("linux") and not any(os.environ.get(name) for name in display_vars):
        return "No display was found for the CLIP Studio window."
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None and not sys.argv[1:]:
        # A bare `clipstudio` typed or double-clicked opens the window where there is a screen for it.
        # Only from the real command line: main([]) from code or tests prints the help, never a window.
        reason = gui_unavailable_reason()
        if not reason:
            from clipstudio.gui.app import main as gui_main

            return gui_main([])
        # No screen (a server, CI, ssh): run the headless demo, the same end-to-end job without a window.
        print(f"{reason} Running the headless demo instead ('clipstudio demo'); "
              "'clipstudio --help' lists every command.\n", flush=True)
        argv = ["demo"]
    args = parser.parse_args(argv)
    if args.selftest or args.command == "selftest":
        from clipstudio.selftest import run_selftest

        return run_selftest(getattr(args, "report", None))
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    from clipstudio.cli import commands

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
    from clipstudio.engine.storage.atomic import atomic_write_text

    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"--json {target}: is a folder; give a file name.")
    atomic_write_text(path, text + "\n")
