"""``clipstudio retrieve DATA --model M``: image-to-text and text-to-image Recall@K on image-caption pairs."""

from __future__ import annotations

import argparse
import io

from clipstudio.cli.args import add_data_args, add_eval_args, add_model_args, config_from_args
from clipstudio.cli.console import EXIT_OK, ProgressBars, scored_payload, show_result
from clipstudio.cli.processes import add_process_args, encode_together, launch, process_group, wants_launch
from clipstudio.cli.steps import embedding_cache, load_data, load_model, pick_split
from clipstudio.engine.errors import DataError
from clipstudio.engine.evaluation.embedding_store import EmbeddingStore
from clipstudio.engine.evaluation.retrieval import evaluate_retrieval

HELP = "image-to-text and text-to-image Recall@K on image-caption pairs"


def add_parser(sub) -> None:
    p = sub.add_parser("retrieve", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_data_args(p)
    add_model_args(p)
    add_eval_args(p, recall=True)
    add_process_args(p, "share the encoding of the images among N processes on this machine, one per GPU; "
                        "the first scores them")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if wants_launch(args):
        return launch(args)
    with process_group(cfg) as ranks:
        dataset = load_data(cfg)
        if not dataset.has_captions:
            raise DataError(f"{dataset.source or dataset.root}: retrieval needs image captions "
                            "(a pairs file: JSON, JSONL or CSV); this dataset has none.")
        part = pick_split(dataset, cfg)
        model = load_model(cfg)
        store = EmbeddingStore(embedding_cache(cfg))
        if ranks.distributed:  # the processes encode the images together; the first keeps them in the store
            encode_together(store, model, part.dataset.paths, cfg, ranks)
    if not ranks.is_main:
        return EXIT_OK
    bars = ProgressBars()
    try:
        result = evaluate_retrieval(model, part.dataset, ks=tuple(cfg.eval.recall_k), store=store,
                                    batch_size=cfg.eval.batch_size, callback=bars)
    finally:
        bars.close()
    payload = scored_payload(result.to_dict(), part, cfg.model.spec)
    show_result(args.json, payload, lambda: format_retrieval(payload))
    return EXIT_OK


def format_retrieval(d: dict) -> str:
    """Recall@K in both directions, with mean and median rank, as the terminal shows them."""
    out = io.StringIO()
    print(f"Retrieval: {d['n']} images, {d.get('n_texts', '?')} captions, split '{d['split']}', "
          f"model {d['model']}", file=out)
    keys = list(d["image_to_text"])
    print(f"{'direction':<15}" + "".join(f"{k:>8}" for k in keys) + f"{'mean rank':>11}{'median':>8}", file=out)
    for direction, label in (("image_to_text", "image -> text"), ("text_to_image", "text -> image")):
        rec = d[direction]
        print(f"{label:<15}" + "".join(f"{rec[k]:>8.3f}" for k in keys)
              + f"{d['mean_rank'][direction]:>11.1f}{d['median_rank'][direction]:>8.1f}", file=out)
    return out.getvalue().rstrip()

