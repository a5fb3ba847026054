"""The steps several commands share: read the data, pick the split, load the model, build the prompts."""

from __future__ import annotations

import argparse
import sys
import time

from clipstudio.cli.console import print_warning, report_problems
from clipstudio.engine.cache.vectors import EmbeddingCache
from clipstudio.engine.config import StudioConfig
from clipstudio.engine.data import Dataset, load_dataset_from_config
from clipstudio.engine.data.corrections import corrections_file
from clipstudio.engine.data.dataset import Sample
from clipstudio.engine.data.metadata import read_metadata
from clipstudio.engine.evaluation.split_policy import EvaluationPart, report_part
from clipstudio.engine.evaluation.subgroups import Grouping, spelled_column
from clipstudio.engine.prompts import PromptSet, prompt_set_from_config


def load_data(cfg: StudioConfig, *, quiet: bool = False) -> Dataset:
    """Read the dataset named in the config and report skipped items on stderr."""
    dataset = load_dataset_from_config(cfg.data)
    if dataset.problems and not quiet:
        report_problems(dataset.problems, "skipped")
    if dataset.corrections_warning:
        print_warning(dataset.corrections_warning)
    elif dataset.corrections_applied:
        n = dataset.corrections_applied
        print(f"{n} correction{'s' if n != 1 else ''} applied (from {corrections_file(cfg.data.path)}).",
              file=sys.stderr)
    return dataset


def with_metadata(dataset: Dataset, args: argparse.Namespace, *, quiet: bool = False) -> Dataset:
    """The dataset with ``--metadata``'s columns attached (when given), saying on stderr how well they fit
    (unless ``quiet``: a process other than the first of several)."""
    if not getattr(args, "metadata", None):
        return dataset
    read = read_metadata(args.metadata, dataset)
    if not quiet:
        print(read.summary(), file=sys.stderr)
    return read.dataset


def subgroup_grouping(args: argparse.Namespace, part: EvaluationPart) -> tuple[Grouping | None, list[Sample]]:
    """``--group`` or ``--group-by`` as a Grouping, and the report images' samples it reads, checked on
    those images now: a bad pattern or a wrong column fails before the model loads, not after the scoring."""
    if args.group:
        grouping = Grouping(pattern=args.group)
    elif args.group_by:
        grouping = Grouping(column=spelled_column(part.dataset.samples, args.group_by))
    else:
        return None, []
    images = part.dataset
    grouping.groups(images.paths, root=images.root, samples=images.samples)
    return grouping, images.samples


def pick_split(dataset: Dataset, cfg: StudioConfig) -> EvaluationPart:
    """The images a report scores, by the engine's split policy (the GUI's too), announced on stderr.

    ``--split`` wins; else test, else val, else the whole dataset.
    """
    part = report_part(dataset, cfg.data, requested=cfg.eval.split)
    print(f"Evaluating on the {part.description}.", file=sys.stderr)
    return part


def load_model(cfg: StudioConfig):
    """The model of ``cfg.model``, announced on stderr with the time it took (an ImageTextModel)."""
    from clipstudio.engine.models import load_model as load  # deferred: torch; `--help` stays instant

    t0 = time.perf_counter()
    print(f"Loading model '{cfg.model.spec}'...", file=sys.stderr)
    model = load(cfg.model.spec, device=cfg.model.device)
    print(f"Model ready on {model.device} in {time.perf_counter() - t0:.1f} s.", file=sys.stderr)
    return model


def prompt_set(cfg: StudioConfig) -> PromptSet:
    return prompt_set_from_config(cfg.prompts, name="cli")


def embedding_cache(cfg: StudioConfig) -> EmbeddingCache | None:
    return EmbeddingCache() if cfg.eval.use_cache else None
