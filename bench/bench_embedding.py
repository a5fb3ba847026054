"""Image-embedding throughput: CLIP Studio's encoder against transformers' zero-shot pipeline, same model.

Row 2 (target >= 3x). The model is a ViT-B/32-sized CLIP with random weights saved to a temp
folder (``--quick``: the tests' tiny CLIP). The baseline is
``pipeline("zero-shot-image-classification", model=folder)`` classifying the images into the class
prompts (given the same batch size); ours is ``encode_image_files`` (threaded decode and uint8
resize + crop, one normalisation per batch, bf16 autocast by default) plus one text encoding and a
matmul, i.e. the same zero-shot answer. Turns alternate after a one-batch warm-up; medians are
reported. Row 2c splits our time into decode / resize + crop / normalise / forward / text, run
one after the other, next to the per-image transformers processor it replaces. Also reported here: bf16
autocast against fp32 on ``encode_images`` (ViT-B/32-sized and built-in model) with the cosine
between their embeddings, and glibc allocator tuning measured in fresh processes (it has to be in
force before the first large allocation).

    .venv/bin/python -m bench.bench_embedding [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    DATASETS,
    build_clip,
    fmt_ratio,
    interleaved,
    machine,
    quick_or_full_main,
    synthetic_class_folders,
)

ROOT = Path(__file__).resolve().parents[1]
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "CLIPSTUDIO_MALLOC_TUNING")


def _image_paths(work: Path, n: int) -> list[Path]:
    real = DATASETS / "pneumoniamnist" / "folders" / "train"
    paths = sorted(real.rglob("*.png")) if real.is_dir() else []
    if len(paths) < n:
        paths = sorted(synthetic_class_folders(work / "synthetic", n, size=28).rglob("*.png"))
    return paths[:n]


def _child(spec: str, n: int, batch: int) -> None:
    """In a fresh process: fp32 encoding seconds of ``n`` random images (allocator settings from the env)."""
    import time

    import torch

    from clipstudio.engine.models import load_model

    model = load_model(spec, device="cpu")
    model.bf16_inference = False
    size = model.image_input_spec().size
    x = torch.randn(batch, 3, size, size)
    model.encode_images(x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(max(1, n // batch)):
        model.encode_images(x)
    print(f"SECONDS {time.perf_counter() - t0:.6f}")


def _allocator_row(spec: str, label: str, n: int, batch: int, pairs: int) -> dict:
    times: dict[str, list[float]] = {"default": [], "tuned": []}
    for _ in range(pairs):
        for name in times:
            env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
            # tuned: load_model's own mallopt (allocator.py); default: that switched off.
            env["CLIPSTUDIO_MALLOC_TUNING"] = "1" if name == "tuned" else "0"
            out = subprocess.run(
                [sys.executable, "-m", "bench.bench_embedding", "--child", spec, str(n), str(batch)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times[name].append(float(out.split("SECONDS")[-1]))
    base, tuned = statistics.median(times["default"]), statistics.median(times["tuned"])
    return {
        "row": f"2b glibc allocator, fp32 encoding, {label} ({n} images, {pairs} process pairs)",
        "baseline": f"default malloc {base:.2f} s",
        "ours": f"mallopt mmap threshold 32 MiB + trim threshold 256 MiB (load_model's default) {tuned:.2f} s",
        "ratio": fmt_ratio(base / tuned),
        "target": "measure",
        "machine": machine(),
        "value": base / tuned,
    }


def _precision_row(model, images, label: str) -> dict:
    """bf16 autocast (the default) against fp32 on one preprocessed batch, alternating, and their cosine."""
    import torch

    pixels = model.preprocess(images)

    def encode(bf16: bool):
        def run() -> None:
            model.bf16_inference = bf16
            model.encode_images(pixels)

        return run

    times = interleaved({"fp32": encode(False), "bf16": encode(True)}, 3)
    model.bf16_inference = False
    fp32 = model.encode_images(pixels)
    model.bf16_inference = True
    bf16 = model.encode_images(pixels)
    cosine = float(torch.nn.functional.cosine_similarity(fp32, bf16).min())
    ips = {k: len(images) / v for k, v in times.items()}
    return {
        "row": f"2a bf16 autocast vs fp32 inference, {label} (encode_images, batch {len(images)}, median of 3)",
        "baseline": f"fp32: {ips['fp32']:.1f} img/s",
        "ours": f"{model.inference_precision}: {ips['bf16']:.1f} img/s; min cosine to fp32 {cosine:.5f}",
        "ratio": fmt_ratio(ips["bf16"] / ips["fp32"]),
        "target": "cosine > 0.99",
        "machine": machine(),
        "value": ips["bf16"] / ips["fp32"],
    }


def _split_row(model, paths: list[Path], labels: list[str], batch: int, label: str) -> dict:
    """Where ``encode_image_files``' time goes: each stage on all images, one after the other (median of 3)."""
    import time

    import numpy as np

    from clipstudio.engine.data.images import load_image
    from clipstudio.engine.embeddings import encode_texts
    from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing

    stages = CLIPProcessorPreprocessing.from_processor(model.image_processor)
    model.bf16_inference = True
    state: dict = {}

    def decode() -> None:
        state["images"] = [load_image(p) for p in paths]

    def crop() -> None:
        state["crops"] = [stages.crop(im) for im in state["images"]]

    def normalise() -> None:
        crops = state["crops"]
        state["pixels"] = [
            stages.normalise(np.stack(crops[s : s + batch])) for s in range(0, len(crops), batch)
        ]

    def forward() -> None:
        for pixels in state["pixels"]:
            model.encode_images(pixels)

    def text() -> None:
        encode_texts(model, labels)

    def processor() -> None:  # what each image cost before: the transformers processor, per image
        for im in state["images"]:
            model.preprocess([im])

    steps = {"decode": decode, "resize+crop": crop, "normalise": normalise, "forward": forward, "text": text}
    times: dict[str, list[float]] = {name: [] for name in [*steps, "processor"]}
    for _ in range(3):
        for name, fn in [*steps.items(), ("processor", processor)]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    total = sum(ms[name] for name in steps)
    return {
        "row": f"2c encode_image_files time split, {label} ({len(paths)} images, batch {batch}, stages run one after the other, median of 3)",
        "baseline": f"transformers CLIPImageProcessor per image (the previous preprocessing): {ms['processor']:.0f} ms",
        "ours": ", ".join(f"{name} {ms[name]:.0f} ms" for name in steps),
        "ratio": f"forward {100 * ms['forward'] / total:.0f}% of {total:.0f} ms",
        "target": "measure",
        "machine": machine(),
        "value": ms["forward"] / total,
    }


def run(quick: bool = False) -> list[dict]:
    import numpy as np
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel, pipeline

    from clipstudio.engine.embeddings import encode_image_files, encode_texts, l2_normalise
    from clipstudio.engine.models import load_model

    n, batch, repeats = (16, 8, 1) if quick else (32, 16, 5)  # fits the suite's 10-minute budget
    labels = ["a chest x-ray of normal lungs", "a chest x-ray showing pneumonia"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = build_clip(work / "clip", "tiny" if quick else "vit_b32")
        label = "tiny CLIP (quick)" if quick else "CLIP ViT-B/32-sized (random init)"
        paths = _image_paths(work, n)
        # The pipeline's default image processor needs torchvision (not installed): hand it the PIL one.
        pipe = pipeline(
            "zero-shot-image-classification",
            model=CLIPModel.from_pretrained(folder, local_files_only=True),
            tokenizer=AutoTokenizer.from_pretrained(folder, local_files_only=True),
            image_processor=CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True),
            device="cpu",
        )
        model = load_model(str(folder), device="cpu")

        def baseline(images: list[Path]):
            def classify() -> None:
                from PIL import Image

                out = pipe(
                    [Image.open(p).convert("RGB") for p in images], candidate_labels=labels, batch_size=batch
                )
                assert len(out) == len(images)

            return classify

        def ours(bf16: bool, images: list[Path]):
            def encode() -> None:
                model.bf16_inference = bf16
                emb = encode_image_files(model, images, cache=None, batch_size=batch).embeddings
                text = l2_normalise(encode_texts(model, labels))
                assert (l2_normalise(emb) @ text.T).shape == (len(images), 2)

            return encode

        for warm in (baseline(paths[:batch]), ours(True, paths[:batch])):
            warm()  # one batch each: kernel selection and first-call allocations stay out of the timing
        times = interleaved({"baseline": baseline(paths), "ours": ours(True, paths)}, repeats, warmup=False)
        model.bf16_inference = True
        precision = model.inference_precision
        ips = {k: len(paths) / v for k, v in times.items()}
        rows.append(
            {
                "row": f"2 image-embedding throughput, {label} ({len(paths)} images, batch {batch})",
                "baseline": f'pipeline("zero-shot-image-classification"): {ips["baseline"]:.1f} img/s',
                "ours": f"encode_image_files ({precision}): {ips['ours']:.1f} img/s",
                "ratio": fmt_ratio(ips["ours"] / ips["baseline"]),
                "target": ">= 3x",
                "machine": machine(),
                "value": ips["ours"] / ips["baseline"],
            }
        )
        rows.append(_split_row(model, paths, labels, batch, label))
        from PIL import Image

        images = [Image.open(p).convert("RGB") for p in paths[:batch]]
        rows.append(_precision_row(model, images, label))
        if not quick:
            rows.append(_precision_row(load_model("builtin", device="cpu"), images, "built-in model"))
        np.random.seed(0)
        spec = str(folder) if quick else "builtin"
        rows.append(
            _allocator_row(
                spec,
                "tiny CLIP (quick)" if quick else "built-in model",
                16 if quick else 32,
                8 if quick else 32,
                1 if quick else 2,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(argv[1], int(argv[2]), int(argv[3]))
        return 0
    return quick_or_full_main("embedding", run, __doc__.splitlines()[0], "tiny model and sizes (smoke run)", argv)


if __name__ == "__main__":
    sys.exit(main())
