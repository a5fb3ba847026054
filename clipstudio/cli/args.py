"""The argument groups the commands share, and parsed arguments -> the one config tree.

Help texts and defaults come from the config fields (``engine.config.help_for``), the same words the
GUI shows as tooltips. Every command spells a setting the same way (DATA first, ``--template``,
``--class-texts``, ...); the older spellings of ``train``/``eval`` (``--data``, ``--text-template``,
``--class-texts-file``, ``--random-state``) stay accepted as hidden aliases so scripts keep working.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from clipstudio.cli.console import EXIT_USAGE
from clipstudio.engine.config import (
    AUGMENTATIONS,
    LOSSES,
    METHOD_CHOICES,
    MONITORS,
    PROBE_PRIORS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    PromptConfig,
    StudioConfig,
    TrainConfig,
    help_for,
    load_config,
)
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.runs.layout import read_run_config
from clipstudio.engine.training.presets import PRESETS, apply_preset


class CliParser(argparse.ArgumentParser):
    """argparse with its errors as one line and exit code 2, like every other user error."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def field_help(cls: type, path: str, prefix: str = "", *, with_default: bool = True) -> str:
    """``prefix`` + the config field's help text (with its default), escaped for argparse's '%'."""
    return (prefix + help_for(cls, path, with_default=with_default)).replace("%", "%%")


# --- numbers: one clear line naming the flag, exit 2 -------------------------------------------------


def _number(kind: type, check: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "at least 1")
non_negative_int = _number(int, lambda v: v >= 0, "0 or more")
at_least_two = _number(int, lambda v: v >= 2, "at least 2")
positive_float = _number(float, lambda v: v > 0, "positive")
non_negative_float = _number(float, lambda v: v >= 0, "0 or more")
fraction = _number(float, lambda v: 0 <= v < 1, "in [0, 1)")
unit_interval = _number(float, lambda v: 0 <= v <= 1, "between 0 and 1")
open_unit_interval = _number(float, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")
unit_interval_above_zero = _number(float, lambda v: 0 < v <= 1, "above 0 and at most 1")


# --- argument groups ---------------------------------------------------------------------------------


def add_data_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """DATA (first positional) and how to read it. ``optional``: DATA may come from elsewhere (a config
    file), and the old ``--data DATA`` spelling is accepted too."""
    data_help = field_help(DataConfig, "path")
    if optional:
        p.add_argument("data", nargs="?", metavar="DATA", help=data_help)
        p.add_argument("--data", dest="data_option", metavar="DATA", help=argparse.SUPPRESS)
    else:
        p.add_argument("data", metavar="DATA", help=data_help)
    p.add_argument("--image-key", metavar="KEY", help=field_help(DataConfig, "image_key"))
    p.add_argument("--caption-key", metavar="KEY", help=field_help(DataConfig, "caption_key"))
    p.add_argument("--images-dir", metavar="DIR", help=field_help(DataConfig, "images_dir"))
    p.add_argument("--allow-outside-root", action="store_const", const=True,
                   help=field_help(DataConfig, "allow_outside_root"))


def add_model_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--model", required=required, metavar="M",
                   help=field_help(ModelConfig, "spec", with_default=not required))
    p.add_argument("--device", help=field_help(ModelConfig, "device"))


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", action="append", metavar="T",
                   help=field_help(PromptConfig, "templates", "Repeat for an ensemble; '{}' works as the placeholder "
                                                              "too. "))
    p.add_argument("--text-template", dest="template", action="append", help=argparse.SUPPRESS)
    p.add_argument("--class-texts", metavar="FILE", help=field_help(PromptConfig, "class_texts"))
    p.add_argument("--class-texts-file", dest="class_texts", help=argparse.SUPPRESS)


def add_eval_args(p: argparse.ArgumentParser, *, recall: bool = False) -> None:
    p.add_argument("--split", metavar="NAME", help=field_help(EvalConfig, "split"))
    p.add_argument("--batch-size", type=positive_int, help=field_help(EvalConfig, "batch_size"))
    if recall:
        p.add_argument("--k", type=positive_int, nargs="+", metavar="K", help=field_help(EvalConfig, "recall_k"))
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON ('-' for stdout)")


def add_clinical_args(p: argparse.ArgumentParser, operating_point_default: str = "") -> None:
    """Conformal coverage, the operating point rule, subgroups and the HTML report (class data);
    ``operating_point_default`` words a default other than the config's."""
    p.add_argument("--coverage", type=open_unit_interval, metavar="C", help=field_help(EvalConfig, "coverage"))
    point_help = field_help(EvalConfig, "operating_point", with_default=not operating_point_default)
    p.add_argument("--operating-point", metavar="RULE", help=f"{point_help} {operating_point_default}".rstrip())
    grouping = p.add_mutually_exclusive_group()
    grouping.add_argument("--group", metavar="REGEX",
                          help="subgroups: metrics per value of the first capture group of REGEX, searched in each "
                               "image's path below the dataset folder, e.g. '^(site\\d+)/'; a subgroup clearly "
                               "below the overall figure is flagged")
    grouping.add_argument("--group-by", metavar="COLUMN",
                          help="subgroups: metrics per value of a metadata COLUMN (an annotation file's other "
                               "columns, or --metadata's), e.g. 'sex'; 'patient' groups by the patient column")
    p.add_argument("--metadata", metavar="CSV",
                   help="per-image metadata for --group-by: a CSV with an image column (paths below the dataset "
                        "folder or the CSV's folder, or bare file names) and any other columns, e.g. "
                        "image,sex,site; needed for class folders; with an annotation file, its columns are added")
    p.add_argument("--report", metavar="FILE",
                   help="also write a report: a self-contained HTML file (charts, example errors; opens offline), "
                        "or a PDF when FILE ends in .pdf")


# TrainConfig field -> (flags, argparse options). Every option defaults to None ("not given"), so a
# --config file's value survives unless the flag is typed.
_TRAIN_OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "output": (("--output",), {"metavar": "RUN"}),
    "method": (("--method",), {"choices": METHOD_CHOICES}),
    "epochs": (("--epochs",), {"type": positive_int}),
    "batch_size": (("--batch-size",), {"type": positive_int}),
    "steps": (("--steps",), {"type": positive_int}),
    "learning_rate": (("--learning-rate", "--lr"), {"type": positive_float}),
    "weight_decay": (("--weight-decay",), {"type": non_negative_float}),
    "layer_decay": (("--layer-decay",), {"type": unit_interval_above_zero}),
    "warmup_steps": (("--warmup-steps",), {"type": non_negative_int}),
    "img_size": (("--img-size",), {"type": positive_int}),
    "augmentation": (("--augmentation",), {"choices": AUGMENTATIONS}),
    "grad_accum": (("--grad-accum",), {"type": positive_int}),
    "resume_from": (("--resume-from",), {"metavar": "RUN"}),
    "early_stopping.patience": (("--early-stopping-patience",), {"type": positive_int, "metavar": "N"}),
    "early_stopping.min_delta": (("--early-stopping-min-delta",), {"type": non_negative_float, "metavar": "D"}),
    "early_stopping.monitor": (("--early-stopping-monitor",), {"choices": MONITORS}),
    "cv.n_splits": (("--n-splits",), {"type": at_least_two, "metavar": "K"}),
    "data.val_fraction": (("--val-fraction",), {"type": fraction}),
    "data.seed": (("--split-seed",), {"type": non_negative_int, "metavar": "N"}),
    "data.group_regex": (("--group-regex",), {"metavar": "RE"}),
    "data.shots_per_class": (("--shots",), {"type": positive_int, "metavar": "K"}),
    "gpu_id": (("--gpu-id",), {"type": non_negative_int}),
    "num_workers": (("--num-workers",), {"type": non_negative_int}),
    "seed": (("--seed",), {"type": non_negative_int}),
    "loss": (("--loss",), {"choices": LOSSES}),
    "lora.rank": (("--lora-rank",), {"type": positive_int}),
    "lora.alpha": (("--lora-alpha",), {"type": positive_float}),
    "lora.dropout": (("--lora-dropout",), {"type": fraction}),
    "probe.prior": (("--probe-prior",), {"choices": PROBE_PRIORS}),
}
# Switches: TrainConfig field -> (flag, the value it sets, what the flag does).
_TRAIN_SWITCHES = {
    "amp": ("--no-amp", False, "Switches this off (full fp32): "),
    "save_best": ("--no-save-best", False, "Switches this off (only checkpoint_latest): "),
    "cv.use_cv": ("--use-cv", True, ""),
}
# Shared groups -> the TrainConfig field of each argparse dest.
_SHARED_TRAIN_DESTS = {
    "image_key": "data.image_key",
    "caption_key": "data.caption_key",
    "images_dir": "data.images_dir",
    "allow_outside_root": "data.allow_outside_root",
    "model": "model.spec",
    "device": "model.device",
    "class_texts": "prompts.class_texts",
}


def _dest(path: str) -> str:
    return path.replace(".", "_")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Every ``clipstudio train`` option; flags override ``--config``."""
    add_data_args(p, optional=True)
    p.add_argument("--config", metavar="FILE", help="TrainConfig JSON (e.g. a run's config.json); flags override it")
    p.add_argument("--preset", choices=PRESETS,
                   help="a published recipe laid over --config; flags typed here override it. clip-lora: "
                        "CLIP-LoRA (LoRA rank 2, alpha 1, dropout 0.25 on q/k/v of every attention layer, lr 2e-4, "
                        "weight decay 1e-2, cosine schedule without warm-up, batch 32, 500 steps per image per "
                        "class: 500 x --shots, or 8000 without --shots)")
    add_model_args(p, required=False)
    add_prompt_args(p)
    p.add_argument("--multi-config", metavar="FILE",
                   help="sweep: JSON array of partial configs laid over these flags, e.g. "
                        '[{"learning_rate": 1e-6}, {"learning_rate": 2e-6}]; runs go to OUTPUT/run_<i>/')
    for path, (flags, options) in _TRAIN_OPTIONS.items():
        if "choices" not in options:
            options = {"metavar": flags[0].lstrip("-").upper().replace("-", "_"), **options}
        p.add_argument(*flags, dest=_dest(path), help=field_help(TrainConfig, path), **options)
    for path, (flag, value, does) in _TRAIN_SWITCHES.items():
        p.add_argument(flag, dest=_dest(path), action="store_const", const=value,
                       help=field_help(TrainConfig, path, does))
    p.add_argument("--random-state", dest=_dest("data.seed"), type=non_negative_int, help=argparse.SUPPRESS)


# --- arguments -> config -----------------------------------------------------------------------------


def data_path(args: argparse.Namespace) -> str | None:
    """DATA as given: the positional argument or the old ``--data`` spelling (not both)."""
    positional, option = getattr(args, "data", None), getattr(args, "data_option", None)
    if positional and option and positional != option:
        raise ConfigError(f"DATA given twice ({positional} and --data {option}); give it once.")
    return positional or option


def templates(given: list[str] | None) -> list[str]:
    """Prompt templates as typed; the fine-tuning guide's '{}' placeholder becomes '{class_name}'."""
    return [t if "{class_name}" in t else t.replace("{}", "{class_name}") for t in given or []]


def _set(cfg: object, path: str, value: object) -> None:
    *parents, name = path.split(".")
    for parent in parents:
        cfg = getattr(cfg, parent)
    setattr(cfg, name, value)


def config_from_args(args: argparse.Namespace) -> StudioConfig:
    """The one config tree of an evaluation command, filled from parsed arguments and validated
    (the GUI fills the same tree from its forms)."""
    cfg = StudioConfig()
    cfg.data.path = data_path(args) or ""
    cfg.prompts.templates = templates(getattr(args, "template", None))
    cfg.eval.use_cache = not getattr(args, "no_cache", False)
    given = {
        "data.image_key": "image_key", "data.caption_key": "caption_key", "data.images_dir": "images_dir",
        "data.allow_outside_root": "allow_outside_root", "model.spec": "model", "model.device": "device",
        "prompts.class_texts": "class_texts", "eval.split": "split", "eval.batch_size": "batch_size",
        "eval.recall_k": "k", "eval.coverage": "coverage", "eval.operating_point": "operating_point",
    }
    for path, dest in given.items():
        value = getattr(args, dest, None)
        if value is not None:
            _set(cfg, path, value)
    cfg.validate()
    return cfg


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``clipstudio train``: --config (or a resumed run's, or the defaults), then every
    flag given, validated."""
    if args.config:
        cfg = load_config(TrainConfig, args.config)
    elif args.resume_from:
        # Resuming needs no other flag: the run's own config, continued in its own folder.
        cfg = read_run_config(args.resume_from)
        cfg.output = args.resume_from
    else:
        cfg = TrainConfig()
    data = data_path(args)
    if data:
        cfg.data.path = data
    for dest, path in _SHARED_TRAIN_DESTS.items():
        if getattr(args, dest) is not None:
            _set(cfg, path, getattr(args, dest))
    typed = [path for path in [*_TRAIN_OPTIONS, *_TRAIN_SWITCHES] if getattr(args, _dest(path)) is not None]
    for path in typed:
        _set(cfg, path, getattr(args, _dest(path)))
    if args.preset:
        cfg = apply_preset(cfg, args.preset, keep=typed)
    if args.template:
        cfg.prompts.templates = templates(args.template)
    cfg.validate()
    return cfg
