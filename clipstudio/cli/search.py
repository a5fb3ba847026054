"""``clipstudio search DATA --model M --text QUERY | --image PATH``: the images closest to a text or an image."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipstudio.cli.args import add_data_args, add_model_args, config_from_args, positive_int
from clipstudio.cli.console import EXIT_OK, ProgressBars
from clipstudio.cli.steps import embedding_cache, load_data, load_model
from clipstudio.engine.errors import ConfigError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.search import search_image, search_text

HELP = "find the images closest to a text, or to an image"


def add_parser(sub) -> None:
    p = sub.add_parser("search", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_data_args(p)
    add_model_args(p)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", metavar="QUERY", help="text query, e.g. 'a chest X-ray showing pneumonia'")
    q.add_argument("--image", metavar="PATH", help="query image")
    p.add_argument("--top", type=positive_int, default=10, help="number of results (default 10)")
    p.add_argument("--split", metavar="NAME", help="search only this split (default: the whole dataset)")
    p.add_argument("--no-cache", action="store_true", help="don't use the on-disk embedding cache")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    dataset = load_data(cfg)
    if cfg.eval.split:
        dataset = dataset.split(cfg.eval.split)
    model = load_model(cfg)
    store = EmbeddingStore(embedding_cache(cfg))
    bars = ProgressBars()
    try:
        if args.text is not None:
            if not args.text.strip():
                raise ConfigError("--text is empty; type what you are looking for.")
            hits = search_text(store, model, dataset, args.text, top=args.top, batch_size=cfg.eval.batch_size,
                               callback=bars)
            caption_hits = []
        else:
            image = Path(args.image)
            if not image.is_file():
                raise ConfigError(f"--image {args.image}: file not found.")
            hits, caption_hits = search_image(store, model, dataset, image, top=args.top,
                                              batch_size=cfg.eval.batch_size, callback=bars)
    finally:
        bars.close()
    print(f"{'rank':>4}  {'score':>6}  image")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit.score:>6.3f}  {hit.path}")
    if caption_hits:
        print(f"\n{'rank':>4}  {'score':>6}  caption")
        for rank, hit in enumerate(caption_hits, 1):
            print(f"{rank:>4}  {hit.score:>6.3f}  {hit.captions[0] if hit.captions else ''}  [{Path(hit.path).name}]")
    return EXIT_OK
