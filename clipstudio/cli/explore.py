"""``clipstudio explore DATA --model M --json FILE [--map map.csv]``: likely label mistakes, near-duplicates,
outliers and (with ``--map``) the 2-D embedding map of a dataset.

Nothing is written into the dataset folder: the results go where ``--json`` and ``--map`` say, the
neighbour graph and the map also to the app's cache folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

import numpy as np

from clipstudio.cli.args import (
    add_data_args,
    add_model_args,
    at_least_two,
    config_from_args,
    non_negative_int,
    positive_int,
    unit_interval,
)
from clipstudio.cli.console import EXIT_OK, ProgressBars, report_problems, show_result
from clipstudio.cli.steps import embedding_cache, load_data, load_model
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.explore import (
    DEFAULT_DUPLICATE_THRESHOLD,
    PICTURE_MATCH,
    Exploration,
    ExploreOptions,
    explore_dataset,
    rank_outliers,
    training_losses,
)
from clipstudio.engine.explore.label_issues import DEFAULT_FOLDS
from clipstudio.engine.explore.training_loss import run_training_images
from clipstudio.engine.storage.atomic import atomic_write_text

HELP = "find likely label mistakes, near-duplicate images, outliers, and draw the embedding map"
DEFAULT_TOP = 50


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explore",
        help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". Reads the dataset's cached image embeddings (encoding "
        "only images not seen before); never changes the dataset folder.",
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    p.add_argument("--map", metavar="FILE.csv",
                   help="also lay out the embedding map and write each image's x, y to this CSV file")
    p.add_argument("--threshold", type=unit_interval, default=DEFAULT_DUPLICATE_THRESHOLD, metavar="T",
                   help="near-duplicates: pairs at least this similar by the model (cosine similarity of "
                        f"embeddings, 0-1) are candidates (default: {DEFAULT_DUPLICATE_THRESHOLD})")
    p.add_argument("--picture-match", type=unit_interval, default=PICTURE_MATCH, metavar="P",
                   help="near-duplicates: a candidate pair counts when their small grey thumbnails correlate at "
                        f"least this much (default: {PICTURE_MATCH}); 0 groups by the model's similarity alone, "
                        "e.g. to find other images of the same patient")
    p.add_argument("--folds", type=at_least_two, default=DEFAULT_FOLDS, metavar="K",
                   help="label mistakes: each image is judged by a classifier trained on the other K-1 parts "
                        f"of the data (default: {DEFAULT_FOLDS})")
    p.add_argument("--top", type=positive_int, default=DEFAULT_TOP, metavar="N",
                   help=f"how many images each list shows (default: {DEFAULT_TOP}); every duplicate group is listed")
    p.add_argument("--run", metavar="RUN",
                   help="a finished training run of this dataset: also list its hardest training images "
                        "(highest loss under the run's final model)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the folds and the map (default: 0)")
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    # Every output path and the run folder are checked before the model loads: a typo costs a second.
    map_path = _checked_output(args.map, ".csv", "--map") if args.map else None
    if args.json and args.json != "-":
        _checked_output(args.json, "", "--json")
    if args.run:
        run_training_images(args.run)
    dataset = load_data(cfg)
    model = load_model(cfg)
    store = EmbeddingStore(embedding_cache(cfg))
    options = ExploreOptions(with_map=map_path is not None, folds=args.folds,
                             duplicate_threshold=args.threshold, picture_match=args.picture_match or None,
                             seed=args.seed)
    bars = ProgressBars()
    try:
        found = explore_dataset(store, model, dataset, options, callback=bars)
        losses = training_losses(args.run, dataset, store, device=cfg.model.device, callback=bars) if args.run else None
    finally:
        bars.close()
    assert found is not None  # nothing asks the CLI to stop; Ctrl+C raises KeyboardInterrupt
    if found.embeddings.problems:
        report_problems(found.embeddings.problems, "could not read")
    payload = result_payload(found, dataset.class_names, args.top, options)
    payload = {"data": cfg.data.path, "model": cfg.model.spec, **payload}
    if losses is not None:
        payload["training_losses"] = _losses_payload(losses, dataset, args.run, args.top)
    if map_path is not None:
        write_map_csv(map_path, found, dataset.class_names)
        payload["map"] = str(map_path)
    show_result(args.json, payload, lambda: format_summary(payload))
    return EXIT_OK


def result_payload(found: Exploration, class_names: list[str], top: int, options: ExploreOptions) -> dict:
    """The JSON of an exploration: the ``top`` entries of each ranked list and every duplicate group."""
    emb = found.embeddings

    def name(label: int) -> str | None:
        return class_names[label] if label >= 0 else None

    payload: dict = {"n_images": len(emb.paths), "n_unreadable": len(emb.problems), "classes": list(class_names)}
    issues = found.label_issues
    if issues is not None:
        payload["label_issues"] = {
            "folds": options.folds,
            "n_likely_mistakes": int(issues.likely_mistake.sum()),
            "top": [
                {
                    "path": emb.paths[r], "split": emb.splits[r], "given": name(int(issues.given[r])),
                    "suggested": name(int(issues.suggested[r])),
                    "label_quality": round(float(issues.label_quality[r]), 6),
                    "likely_mistake": bool(issues.likely_mistake[r]),
                }
                for r in issues.order[:top].tolist()
                if issues.given[r] >= 0
            ],
        }
    groups = found.duplicates
    payload["duplicates"] = {
        "threshold": options.duplicate_threshold,
        "picture_match": options.picture_match,
        "n_groups": len(groups),
        "n_across_splits": sum(g.across_splits for g in groups),
        "groups": [
            {
                "paths": [emb.paths[r] for r in g.rows], "splits": [emb.splits[r] for r in g.rows],
                "across_splits": g.across_splits, "min_similarity": round(g.min_similarity, 6),
                "max_similarity": round(g.max_similarity, 6),
            }
            for g in groups
        ],
    }
    payload["outliers"] = {
        "neighbours": options.outlier_neighbours,
        "top": [
            {"path": emb.paths[r], "split": emb.splits[r], "label": name(int(emb.labels[r])),
             "score": round(float(found.outlier_scores[r]), 6)}
            for r in rank_outliers(found.outlier_scores)[:top].tolist()
        ],
    }
    return payload


def _losses_payload(losses, dataset, run_dir: str, top: int) -> dict:
    names = dataset.class_names
    return {
        "run": str(run_dir),
        "method": losses.method,
        "n_images": len(losses.indices),
        "top": [
            {
                "path": str(dataset.samples[losses.indices[i]].path),
                "label": names[dataset.samples[losses.indices[i]].label],
                "predicted": names[int(losses.predicted[i])],
                "loss": round(float(losses.losses[i]), 6),
            }
            for i in losses.hardest()[:top].tolist()
        ],
    }


def write_map_csv(path: Path, found: Exploration, class_names: list[str]) -> None:
    """One row per image: path, split, label, x, y (written atomically)."""
    emb, xy = found.embeddings, found.xy
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "split", "label", "x", "y"])
    for r, (x, y) in enumerate(np.asarray(xy, dtype=np.float64).tolist()):
        label = class_names[emb.labels[r]] if emb.labels[r] >= 0 else ""
        writer.writerow([emb.paths[r], emb.splits[r], label, f"{x:.5f}", f"{y:.5f}"])
    try:
        atomic_write_text(path, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"--map {path}: can't write the file ({exc.strerror or exc}).") from None


def _checked_output(given: str, suffix: str, flag: str) -> Path:
    """``given`` as a file path that can be written (with ``suffix``, if one is required)."""
    path = Path(os.path.abspath(Path(given).expanduser()))
    if suffix and path.suffix.lower() != suffix:
        raise ConfigError(f"{flag} {given}: the file name must end in {suffix}.")
    if path.is_dir():
        raise ConfigError(f"{flag} {given}: is a folder; give a file name.")
    folder = next(p for p in path.parents if p.exists())  # missing folders are created on writing
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {given}: can't write to the folder {folder}.")
    return path


def format_summary(d: dict) -> str:
    lines = [f"Explored {d['n_images']} images of {d['data']} with {d['model']}."]
    issues = d.get("label_issues")
    if issues is not None:
        lines.append(f"Likely label mistakes: {issues['n_likely_mistakes']} (most likely first):")
        for row in issues["top"][:10]:
            lines.append(f"  {row['label_quality']:.3f}  {row['given']} -> {row['suggested']}  {row['path']}")
    dup = d["duplicates"]
    lines.append(f"Near-duplicate groups (similarity >= {dup['threshold']}): {dup['n_groups']}, "
                 f"{dup['n_across_splits']} across splits.")
    for group in dup["groups"][:10]:
        flag = "ACROSS SPLITS " if group["across_splits"] else ""
        lines.append(f"  {flag}{len(group['paths'])} images: {', '.join(group['paths'][:3])}"
                     + (" ..." if len(group["paths"]) > 3 else ""))
    lines.append("Most unusual images (outliers):")
    for row in d["outliers"]["top"][:5]:
        lines.append(f"  {row['score']:.3f}  {row['path']}")
    losses = d.get("training_losses")
    if losses is not None:
        lines.append(f"Hardest training images of the run ({losses['method']}):")
        for row in losses["top"][:5]:
            lines.append(f"  loss {row['loss']:.3f}  {row['label']} (predicted {row['predicted']})  {row['path']}")
    if "map" in d:
        lines.append(f"Wrote the map coordinates to {d['map']}.")
    return "\n".join(lines)
