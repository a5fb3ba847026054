"""What each ``clipstudio`` command does, on top of the engine. Parsing lives in ``cli.py``."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

from clipstudio.cli.main import EXIT_FAILED, EXIT_OK, write_json
from clipstudio.engine.config import StudioConfig
from clipstudio.engine.errors import ConfigError, DataError
from clipstudio.engine.events import MessageLogged, ProgressUpdated

# Wider confusion matrices wrap into noise in a terminal (5,000 classes would print 25 million cells).
CONFUSION_MATRIX_MAX_CLASSES = 30


def run(command: str, args: argparse.Namespace, cfg: StudioConfig) -> int:
    handler = {
        "inspect": cmd_inspect,
        "zeroshot": cmd_zeroshot,
        "retrieve": cmd_retrieve,
        "search": cmd_search,
        "demo": cmd_demo,
        "train": _cmd_train,
        "eval": _cmd_eval,
    }[command]
    return handler(args, cfg)


class ProgressBars:
    """Turns engine ProgressUpdated events into tqdm bars on stderr, shown only for work over ~2 s."""

    def __init__(self, enabled: bool | None = None):
        self._bars: dict[str, Any] = {}
        self._enabled = enabled

    def __call__(self, event: object) -> None:
        if isinstance(event, MessageLogged):
            print(f"clipstudio: {event.level}: {event.text}", file=sys.stderr)
            return
        if not isinstance(event, ProgressUpdated):
            return
        from tqdm import tqdm

        bar = self._bars.get(event.stage)
        if bar is None:
            disable = None if self._enabled is None else not self._enabled
            bar = tqdm(total=event.total, desc=event.stage, unit="img", delay=2.0, file=sys.stderr,
                       disable=disable, leave=False, dynamic_ncols=True)
            self._bars[event.stage] = bar
        bar.total = event.total
        bar.n = event.done
        bar.refresh()
        if event.done >= event.total:
            bar.close()
            del self._bars[event.stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


# ---------------------------------------------------------------- shared steps

def load_data(cfg: StudioConfig, *, quiet: bool = False):
    """Read the dataset named in the config and report skipped items on stderr."""
    from clipstudio.engine.data import load_dataset

    data = cfg.data
    dataset = load_dataset(
        data.path,
        image_key=data.image_key,
        caption_key=data.caption_key,
        images_dir=data.images_dir,
        allow_outside_root=data.allow_outside_root,
    )
    if dataset.problems and not quiet:
        _report_problems(dataset.problems, "skipped")
    return dataset


def _report_problems(problems, verb: str, shown: int = 5) -> None:
    print(f"clipstudio: warning: {verb} {len(problems)} item(s):", file=sys.stderr)
    for p in problems[:shown]:
        print(f"  {p.path}: {p.reason}", file=sys.stderr)
    if len(problems) > shown:
        print(f"  ... and {len(problems) - shown} more (run 'clipstudio inspect DATA --json -' for all)",
              file=sys.stderr)


def pick_split(dataset, requested: str | None):
    """The split to evaluate: the one asked for; else test, else val; else the whole dataset."""
    if requested:
        return dataset.split(requested), requested
    names = dataset.split_names()
    for name in ("test", "val"):
        if name in names:
            return dataset.split(name), name
    return dataset, "all"


def load_model(cfg: StudioConfig):
    from clipstudio.engine.models import load_model as _load

    t0 = time.perf_counter()
    print(f"Loading model '{cfg.model.spec}'...", file=sys.stderr)
    model = _load(cfg.model.spec, device=cfg.model.device)
    print(f"Model ready on {model.device} in {time.perf_counter() - t0:.1f} s.", file=sys.stderr)
    return model


def prompt_set(cfg: StudioConfig):
    from clipstudio.engine.prompts import DEFAULT_TEMPLATES, PromptSet, load_class_texts

    templates = cfg.prompts.templates or list(DEFAULT_TEMPLATES)
    class_texts = load_class_texts(cfg.prompts.class_texts) if cfg.prompts.class_texts else {}
    return PromptSet(name="cli", templates=templates, class_texts=class_texts)


def embedding_cache(cfg: StudioConfig):
    from clipstudio.engine.embeddings import EmbeddingCache

    return EmbeddingCache() if cfg.eval.use_cache else None


# ---------------------------------------------------------------- commands

def cmd_inspect(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.engine.data.health import health_report

    dataset = load_data(cfg, quiet=True)
    count_tokens = max_tokens = None
    if args.model:
        cfg.model.spec = args.model
        model = load_model(cfg)
        count_tokens, max_tokens = model.count_tokens, model.max_text_tokens
    bars = ProgressBars()
    try:
        report = health_report(dataset, count_tokens=count_tokens, max_tokens=max_tokens, callback=bars)
    finally:
        bars.close()
    payload = report.to_dict()
    if args.json:
        write_json(args.json, payload)
    if args.json != "-":
        print(format_health(payload, dataset))
    return EXIT_OK


def format_health(d: dict, dataset) -> str:
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


def cmd_zeroshot(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot

    dataset = load_data(cfg)
    if not dataset.is_classification:
        raise DataError(f"{dataset.source or dataset.root}: zero-shot needs class labels for at least 2 classes "
                        f"(class folders, or a label column); this dataset has {len(dataset.class_names)}.")
    part, split_name = pick_split(dataset, cfg.eval.split)
    prompts = prompt_set(cfg)
    model = load_model(cfg)
    bars = ProgressBars()
    try:
        result = evaluate_zero_shot(model, part, prompts, cache=embedding_cache(cfg),
                                    batch_size=cfg.eval.batch_size, callback=bars)
    finally:
        bars.close()
    if result.problems:
        _report_problems(result.problems, "could not read")
    payload = result.to_dict()
    payload["split"] = split_name
    payload["model"] = cfg.model.spec
    if args.json:
        write_json(args.json, payload)
    if args.predictions:
        write_predictions_csv(args.predictions, result)
    if args.json != "-":
        print(format_zero_shot(payload))
    return EXIT_OK


def format_zero_shot(d: dict) -> str:
    out = io.StringIO()
    print(f"Zero-shot: {d['n']} images, {len(d['classes'])} classes, split '{d['split']}', model {d['model']}",
          file=out)
    ci = d.get("ci95") or {}

    def ci_text(key: str) -> str:
        lo_hi = ci.get(key)
        return f"  (95% CI {lo_hi[0]:.3f}-{lo_hi[1]:.3f})" if lo_hi else ""

    print(f"accuracy           {d['accuracy']:.3f}{ci_text('accuracy')}", file=out)
    print(f"balanced accuracy  {d['balanced_accuracy']:.3f}{ci_text('balanced_accuracy')}", file=out)
    if d.get("top5_accuracy") is not None:
        print(f"top-5 accuracy     {d['top5_accuracy']:.3f}", file=out)
    width = max(8, *(len(c) for c in d["classes"]))
    print(f"\n{'class':<{width}}  precision  recall     f1  support", file=out)
    for name in d["classes"]:
        m = d["per_class"][name]
        print(f"{name:<{width}}  {m['precision']:>9.3f}  {m['recall']:>6.3f}  {m['f1']:>5.3f}  {m['support']:>7}",
              file=out)
    n_classes = len(d["classes"])
    if n_classes > CONFUSION_MATRIX_MAX_CLASSES:
        print(f"\nconfusion matrix: {n_classes} x {n_classes}, too wide to show here (it is in the --json output)",
              file=out)
        return out.getvalue().rstrip()
    print("\nconfusion matrix (rows: true, columns: predicted)", file=out)
    for name, row in zip(d["classes"], d["confusion_matrix"], strict=True):
        print(f"{name:<{width}}  " + " ".join(f"{v:>6}" for v in row), file=out)
    return out.getvalue().rstrip()


def write_predictions_csv(target: str, result) -> None:
    from clipstudio.engine.storage.atomic import atomic_write_text

    rows = result.to_dict(include_predictions=True)["predictions"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "predicted", "correct", "top_k"])
    for r in rows:
        topk = "; ".join(f"{c}={p:.4f}" for c, p in r["topk"])
        writer.writerow([r["path"], r["true"], r["pred"], r["true"] == r["pred"], topk])
    atomic_write_text(target, buf.getvalue())


def cmd_retrieve(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.engine.evaluation.zero_shot import evaluate_retrieval

    dataset = load_data(cfg)
    if not dataset.has_captions:
        raise DataError(f"{dataset.source or dataset.root}: retrieval needs image captions "
                        "(a pairs file: JSON, JSONL or CSV); this dataset has none.")
    part, split_name = pick_split(dataset, cfg.eval.split)
    model = load_model(cfg)
    bars = ProgressBars()
    try:
        result = evaluate_retrieval(model, part, ks=tuple(cfg.eval.recall_k), cache=embedding_cache(cfg),
                                    batch_size=cfg.eval.batch_size, callback=bars)
    finally:
        bars.close()
    payload = result.to_dict()
    payload["split"] = split_name
    payload["model"] = cfg.model.spec
    if args.json:
        write_json(args.json, payload)
    if args.json != "-":
        print(format_retrieval(payload))
    return EXIT_OK


def format_retrieval(d: dict) -> str:
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


def cmd_search(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.engine.evaluation.zero_shot import search_image, search_text

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}.")
    dataset = load_data(cfg)
    if args.split:
        dataset = dataset.split(args.split)
    model = load_model(cfg)
    bars = ProgressBars()
    try:
        if args.text is not None:
            if not args.text.strip():
                raise ConfigError("--text is empty; type what you are looking for.")
            hits = search_text(model, dataset, args.text, top=args.top, cache=embedding_cache(cfg), callback=bars)
            caption_hits = []
        else:
            image = Path(args.image)
            if not image.is_file():
                raise ConfigError(f"--image {args.image}: file not found.")
            hits, caption_hits = search_image(model, dataset, image, top=args.top, cache=embedding_cache(cfg),
                                              callback=bars)
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


def _cmd_train(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.cli.train import cmd_train

    return cmd_train(args, cfg)


def _cmd_eval(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.cli.train import cmd_eval

    return cmd_eval(args, cfg)


def cmd_demo(args: argparse.Namespace, cfg: StudioConfig) -> int:
    from clipstudio.cli import demo

    return EXIT_OK if demo.run_demo(model_spec=args.model, device=args.device, out=args.out) else EXIT_FAILED
