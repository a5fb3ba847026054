"""``clipstudio embed DATA | --text T ... --model M --output FILE.npz``: embeddings for your own analysis.

The ``.npz`` holds ``paths`` and ``image_embeddings`` (plus ``skipped`` and ``skipped_reasons``, the
images that could not be read), or ``texts`` and ``text_embeddings``; rows are float32, L2-normalised
and in the order the dataset lists the images or the texts were given. ``model`` names the model.
Image vectors come from the on-disk embedding cache where it has them. With ``--nproc-per-node N``
the processes share the encoding and the first writes the file and the cache (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipstudio.cli.args import (
    add_data_args,
    add_model_args,
    config_from_args,
    data_path,
    field_help,
    positive_int,
)
from clipstudio.cli.console import EXIT_OK, ProgressBars, print_warning, show_result
from clipstudio.cli.processes import add_process_args, image_encoder, launch, process_group, wants_launch
from clipstudio.cli.steps import embedding_cache, load_data, load_model
from clipstudio.engine.config import EvalConfig, StudioConfig
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.embeddings import EncodedImages, l2_normalise, normalised_text_embeddings
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.embedding_store import require_some_images
from clipstudio.engine.storage.atomic import atomic_write_bytes

HELP = "export image or text embeddings to a .npz file (for notebooks, FiftyOne, ...)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed",
        help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". Give DATA for the embeddings of every readable image, "
        "or --text (repeated) for text embeddings.",
    )
    add_data_args(p, optional=True)
    p.add_argument("--text", action="append", metavar="TEXT",
                   help="a text to embed instead of DATA's images; repeat for several")
    add_model_args(p)
    p.add_argument("--output", required=True, metavar="FILE.npz", help="where to write the embeddings (.npz)")
    p.add_argument("--split", metavar="NAME", help="embed only this split's images (default: the whole dataset)")
    p.add_argument("--batch-size", type=positive_int, help=field_help(EvalConfig, "batch_size"))
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")
    p.add_argument("--json", metavar="FILE", help="write a summary as JSON ('-' for stdout)")
    add_process_args(p, "share the encoding of DATA's images among N processes on this machine, one per GPU; "
                        "the first writes the file")


def run(args: argparse.Namespace) -> int:
    data, texts = data_path(args), args.text
    if data and texts:
        raise ConfigError("give DATA (image embeddings) or --text (text embeddings), not both.")
    if not data and not texts:
        raise ConfigError("nothing to embed: give DATA (image embeddings) or --text TEXT (text embeddings).")
    if texts and not all(t.strip() for t in texts):
        raise ConfigError("--text is empty; type the text to embed.")
    output = checked_output(args.output)
    cfg = config_from_args(args)
    if texts:
        model = load_model(cfg)
        arrays = {"texts": np.array(texts, dtype=str), "text_embeddings": normalised_text_embeddings(model, texts)}
        summary = {"kind": "text", "n": len(texts), "n_cached": 0, "n_encoded": len(texts), "skipped": []}
    elif wants_launch(args):
        return launch(args)
    else:
        with process_group(cfg) as ranks:
            dataset, encoded = encoded_images(cfg, image_encoder(ranks))
        if not ranks.is_main:  # the first process has every image's embedding and writes the file
            return EXIT_OK
        arrays, summary = image_arrays(dataset, encoded)
    arrays["model"] = np.array(cfg.model.spec, dtype=str)
    write_npz(output, arrays)
    rows = arrays["text_embeddings" if texts else "image_embeddings"]
    payload = {"output": str(output), "model": cfg.model.spec, "dim": int(rows.shape[1]), **summary}
    show_result(args.json, payload, lambda: format_summary(payload))
    return EXIT_OK


def encoded_images(cfg: StudioConfig, encode: Callable[..., EncodedImages]) -> tuple[Dataset, EncodedImages]:
    """The dataset (or its ``--split``) and its images encoded with ``encode`` (``encode_image_files``'s arguments)."""
    dataset = load_data(cfg)
    if cfg.eval.split:
        dataset = dataset.split(cfg.eval.split)
    model = load_model(cfg)
    bars = ProgressBars()
    try:
        encoded = encode(model, dataset.paths, cache=embedding_cache(cfg), batch_size=cfg.eval.batch_size,
                         callback=bars)
    finally:
        bars.close()
    return dataset, encoded


def image_arrays(dataset: Dataset, encoded: EncodedImages) -> tuple[dict[str, np.ndarray], dict]:
    """The npz arrays and the summary of every readable image of the dataset."""
    require_some_images(encoded, dataset)
    for problem in encoded.problems:
        print_warning(f"left out {problem.path}: {problem.reason}")
    arrays = {
        "paths": np.array([str(dataset.paths[i]) for i in encoded.indices], dtype=str),
        "image_embeddings": l2_normalise(encoded.embeddings),
        "skipped": np.array([p.path for p in encoded.problems], dtype=str),
        "skipped_reasons": np.array([p.reason for p in encoded.problems], dtype=str),
    }
    summary = {
        "kind": "image",
        "n": len(encoded.indices),
        "n_cached": encoded.n_cached,
        "n_encoded": encoded.n_encoded,
        "skipped": [p.to_dict() for p in encoded.problems],
    }
    return arrays, summary


def checked_output(given: str) -> Path:
    """``--output`` as a path that can be written: a .npz file name in a folder we may write to.

    Checked before the model loads, so a typo costs a second, not a minute.
    """
    path = Path(os.path.abspath(Path(given).expanduser()))
    if path.suffix.lower() != ".npz":
        raise ConfigError(f"--output {given}: the file name must end in .npz.")
    if path.is_dir():
        raise ConfigError(f"--output {given}: is a folder; give a file name ending in .npz.")
    folder = next(p for p in path.parents if p.exists())  # missing folders are created on writing
    if not folder.is_dir():
        raise ConfigError(f"--output {given}: {folder} is a file, not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--output {given}: can't write to the folder {folder} (permission denied).")
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The arrays as an uncompressed .npz, written atomically (no object arrays: loads without pickle)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"--output {path}: can't write the file ({exc.strerror or exc}).") from None


def format_summary(d: dict) -> str:
    what = "image" if d["kind"] == "image" else "text"
    line = f"Wrote {d['n']} {what} embeddings (dimension {d['dim']}, L2-normalised) to {d['output']}"
    if d["kind"] == "image":
        line += f"; {d['n_cached']} from the cache, {d['n_encoded']} encoded"
        if d["skipped"]:
            line += f"; {len(d['skipped'])} unreadable image(s) left out (listed in 'skipped')"
    return line + "."
