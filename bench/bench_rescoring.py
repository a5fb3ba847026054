"""Prompt re-scoring latency with cached image embeddings, against re-encoding the images.

Row 3 (target < 100 ms): 10,000 images x 20 classes x 5 prompt templates. With the image
embeddings already cached (the app keeps them in memory), re-scoring after a prompt edit is
what ``compare_prompt_sets`` does per set: encode the 100 prompt texts, average per class, one
matmul, the metrics.
The headline figure is re-scoring after one template is edited, with a ``TextEmbeddingCache``
(20 texts encoded, 80 cached), split into its texts and its scoring maths; re-scoring with all 100
prompts new, and the Prompts screen's re-score (the same plus 1,000 bootstrap resamples for its
95% CIs), are reported beside it.
The baseline re-encodes the images; it is extrapolated from a measured subset (stated in the row).
Model: the built-in model (``--quick``: the tests' tiny CLIP, 1,000 images).

    .venv/bin/python -m bench.bench_rescoring [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.bench_embedding import _image_paths
from bench.common import build_clip, fmt_ratio, interleaved, machine, quick_or_full_main


def run(quick: bool = False) -> list[dict]:
    import numpy as np

    from clipstudio.engine.cache.vectors import TextEmbeddingCache
    from clipstudio.engine.embeddings import encode_image_files, l2_normalise
    from clipstudio.engine.evaluation.zero_shot import class_text_embeddings, score_embeddings
    from clipstudio.engine.models import load_model
    from clipstudio.engine.prompts import DEFAULT_TEMPLATES, PromptSet

    n_images, n_classes, n_templates = (1000, 20, 5) if quick else (10_000, 20, 5)
    subset = 8 if quick else 16
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = str(build_clip(work / "clip", "tiny")) if quick else "builtin"
        label = "tiny CLIP (quick)" if quick else "built-in model"
        model = load_model(spec, device="cpu")
        rng = np.random.default_rng(0)
        image_emb = l2_normalise(rng.standard_normal((n_images, model.embed_dim), dtype=np.float32))
        labels = rng.integers(0, n_classes, n_images)
        class_names = [f"finding {c}" for c in range(n_classes)]
        templates = list(DEFAULT_TEMPLATES)[:n_templates]
        while len(templates) < n_templates:
            templates.append(f"variant {len(templates)}: " + "{class_name}")
        paths = _image_paths(work, subset)
        edits = iter(range(10**6))

        def compare(prompts: PromptSet, text_cache=None) -> None:
            # compare_prompt_sets' work for one set, on these in-memory embeddings.
            class_emb = class_text_embeddings(model, class_names, prompts, text_cache=text_cache)
            score_embeddings(
                image_emb, labels, class_emb, class_names, logit_scale=model.logit_scale, n_bootstrap=0,
                with_predictions=False,
            )

        text_cache = TextEmbeddingCache()
        compare(PromptSet(name="start", templates=templates), text_cache)

        def rescore_all() -> None:
            # Every prompt new (a fresh suffix each time): all 100 texts are encoded.
            k = next(edits)
            prompts = PromptSet(name=f"new {k}", templates=[f"{t} ({k})" for t in templates])
            compare(prompts)

        def rescore_edit() -> None:
            # The user edits one template: its 20 texts are new, the other 80 come from the text cache.
            k = next(edits)
            prompts = PromptSet(name=f"edit {k}", templates=[*templates[:-1], f"{templates[-1]} ({k})"])
            compare(prompts, text_cache)

        class_emb = class_text_embeddings(model, class_names, PromptSet(templates=templates))

        def edit_texts() -> None:
            # The text half of ``rescore_edit``: 20 texts encoded, 80 from the cache, the class means.
            k = next(edits)
            prompts = PromptSet(name=f"edit {k}", templates=[*templates[:-1], f"{templates[-1]} ({k})"])
            class_text_embeddings(model, class_names, prompts, text_cache=text_cache)

        def score() -> None:
            # The maths half, as compare_prompt_sets runs it.
            score_embeddings(
                image_emb,
                labels,
                class_emb,
                class_names,
                logit_scale=model.logit_scale,
                n_bootstrap=0,
                with_predictions=False,
            )

        def screen_rescore() -> None:
            # What the Prompts screen runs after an edit: the same, plus bootstrap CIs.
            k = next(edits)
            prompts = PromptSet(name=f"edit {k}", templates=[*templates[:-1], f"{templates[-1]} ({k})"])
            score_embeddings(
                image_emb,
                labels,
                class_text_embeddings(model, class_names, prompts, text_cache=text_cache),
                class_names,
                logit_scale=model.logit_scale,
                with_predictions=False,
            )

        def reencode_subset() -> None:
            encode_image_files(model, paths, cache=None, batch_size=subset)

        times = interleaved(
            {
                "edit": rescore_edit,
                "texts": edit_texts,
                "score": score,
                "all": rescore_all,
                "screen": screen_rescore,
                "subset": reencode_subset,
            },
            5,
        )
    baseline = times["subset"] / len(paths) * n_images
    ours = times["edit"]
    return [
        {
            "row": f"3 prompt re-scoring, {label}: {n_images} cached images x {n_classes} classes x {n_templates} prompts",
            "baseline": f"re-encode the images: {baseline:.1f} s (extrapolated from {len(paths)} images "
            f"measured at {times['subset'] * 1000 / len(paths):.0f} ms/image)",
            "ours": f"one template edited (20 texts encoded, 80 from the text cache): {ours * 1000:.0f} ms "
            f"(texts {times['texts'] * 1000:.0f} ms + scoring {times['score'] * 1000:.0f} ms); "
            f"all {n_classes * n_templates} prompts new: {times['all'] * 1000:.0f} ms; "
            f"Prompts screen re-score with 95% CIs: {times['screen'] * 1000:.0f} ms",
            "ratio": fmt_ratio(baseline / ours),
            "target": "< 100 ms",
            "machine": machine(),
            "value": ours,
        }
    ]


def main(argv: list[str] | None = None) -> int:
    return quick_or_full_main("rescoring", run, __doc__.splitlines()[0], "tiny model and sizes (smoke run)", argv)


if __name__ == "__main__":
    sys.exit(main())
