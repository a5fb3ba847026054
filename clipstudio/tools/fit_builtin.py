"""Make the built-in model's text projection: ``python -m clipstudio.tools.fit_builtin``.

Aligns all-MiniLM-L6-v2 sentence embeddings to EfficientNet-Lite0's image features without any
image-text training data: a closed-form ridge map from prompt embeddings of the 1,000 ImageNet class
names onto the L2-normalised rows of the backbone's ImageNet classifier. An image then scores high
against a text whose mapped embedding points like the classifier row of what the image shows.

Deterministic (single-threaded torch, float64 solves, fixed fold split). Writes
resources/models/builtin/{text_projection.safetensors, builtin_model.json}. The sample-photo
checks and the temperature calibration use scikit-image's bundled photos (dev-only dependency).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from clipstudio.engine.models.backbones import efficientnet_lite0_state_dict
from clipstudio.engine.models.builtin import (
    NAMES_NAME,
    PROJECTION_NAME,
    SPEC_NAME,
    build_unaligned,
    builtin_dir,
)
from clipstudio.engine.models.image_preprocessing import ImagePreprocessing
from clipstudio.engine.storage.atomic import atomic_write, atomic_write_json

TEMPLATES = [
    "a photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a cropped photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
]
LAMBDAS = [0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
FOLDS = 10
SCALES = [float(s) for s in range(5, 101, 5)]
# skimage.data photo -> ImageNet classes a person would accept (for the report only).
PHOTOS = {
    "chelsea": ["tabby", "tiger cat", "Egyptian cat", "Persian cat"],
    "rocket": ["missile", "projectile", "space shuttle"],
    "coffee": ["espresso", "cup", "coffee mug"],
    "horse": [],  # a binary silhouette: no fair ImageNet label
    "coins": [],
    "camera": ["tripod", "reflex camera"],
    "astronaut": [],
    "stereo_motorcycle": ["moped", "motor scooter", "crash helmet", "disk brake"],
}
NORMALISATIONS = {
    "tf_lite_127_128": ([127 / 255] * 3, [128 / 255] * 3),
    "imagenet_mean_std": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}
BASE_SPEC: dict[str, Any] = {
    "format_version": 1,
    "image_backbone": "efficientnet_lite0",
    "text_encoder": "sentence-transformers/all-MiniLM-L6-v2",
    "max_text_tokens": 256,  # all-MiniLM-L6-v2's sentence-transformers max_seq_length
    "logit_scale": 1 / 0.07,
}


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """W, b minimising |xW + b - y|^2 + lam |W|^2 (intercept unpenalised), in float64."""
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - xm @ w


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def ensemble(x_t: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, C, d) prompt embeddings -> (C, D) unit class embeddings: mean of unit predictions, renormalised."""
    return _unit(_unit(x_t @ w + b).mean(0))


def heldout_top1(x_t: np.ndarray, rows: np.ndarray, lam: float, folds: int = FOLDS) -> list[float]:
    """Per fold: fit on the other classes, then top-1 of each held-out class among the held-out rows."""
    order = np.random.default_rng(0).permutation(rows.shape[0])
    scores = []
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        w, b = ridge(x_t[:, train].reshape(-1, x_t.shape[-1]), np.tile(rows[train], (x_t.shape[0], 1)), lam)
        sims = ensemble(x_t[:, test], w, b) @ rows[test].T
        scores.append(float((sims.argmax(1) == np.arange(len(test))).mean()))
    return scores


def sample_photos() -> dict[str, Any]:
    from PIL import Image
    from skimage import data

    photos = {}
    for name in PHOTOS:
        array = getattr(data, name)()
        array = array[0] if isinstance(array, tuple) else array
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        photos[name] = Image.fromarray(array).convert("RGB")
    return photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=Path, default=None, help="ImageNet class names JSON (1000, in order)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default resources/models/builtin)"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = args.out or builtin_dir()
    names: list[str] = json.loads((args.names or builtin_dir() / NAMES_NAME).read_text(encoding="utf-8"))
    assert len(names) == 1000, "expected the 1,000 ImageNet-1k class names in index order"
    state = efficientnet_lite0_state_dict()
    fc_w, fc_b = state["_fc.weight"].double().numpy(), state["_fc.bias"].double().numpy()
    rows = _unit(fc_w)

    # 1. Which input normalisation does this port expect? Classify the photos with its own head.
    photos = sample_photos()
    spec = dict(BASE_SPEC)
    spec["preprocessing"] = ImagePreprocessing(image_size=224).to_dict()
    model = build_unaligned(spec)
    model.module.eval()
    backbone = model.module.image_backbone
    norm_check = {}
    for label, (mean, std) in NORMALISATIONS.items():
        pixels = ImagePreprocessing(image_size=224, mean=tuple(mean), std=tuple(std))(list(photos.values()))
        with torch.inference_mode():
            probs = torch.softmax(torch.from_numpy(backbone(pixels).double().numpy() @ fc_w.T + fc_b), -1)
        accepted = [
            float(probs[i, [names.index(n) for n in ok]].sum()) for i, ok in enumerate(PHOTOS.values()) if ok
        ]
        norm_check[label] = {
            "mean_prob_of_accepted_classes": round(float(np.mean(accepted)), 4),
            "top1": {p: names[int(probs[i].argmax())] for i, p in enumerate(photos)},
        }
        print(f"normalisation {label}: {norm_check[label]}", file=sys.stderr)
    best_norm = max(norm_check, key=lambda k: norm_check[k]["mean_prob_of_accepted_classes"])
    mean, std = NORMALISATIONS[best_norm]
    preprocessing = ImagePreprocessing(image_size=224, mean=tuple(mean), std=tuple(std))
    spec["preprocessing"] = preprocessing.to_dict()
    model.preprocessing = preprocessing

    # 2. Prompt embeddings (MiniLM mean pooling + L2 norm, exactly as the model computes them).
    with torch.inference_mode():
        x_t = np.stack(
            [
                model.module.pooled_text(model.tokenize([t.format(n) for n in names])).double().numpy()
                for t in TEMPLATES
            ]
        )

    # 3. Ridge lambda by 10-fold held-out classes (fit on 900, rank each of the other 100 among those 100).
    folds = {lam: heldout_top1(x_t, rows, lam) for lam in LAMBDAS}
    for lam, scores in folds.items():
        print(
            f"lambda {lam}: held-out top-1 among 100 = {np.mean(scores):.3f} (folds {scores})",
            file=sys.stderr,
        )
    lam = max(LAMBDAS, key=lambda v: (np.mean(folds[v]), v))
    w, b = ridge(x_t.reshape(-1, x_t.shape[-1]), np.tile(rows, (len(TEMPLATES), 1)), lam)
    with torch.no_grad():
        model.module.text_projection.weight.copy_(torch.from_numpy(w.T).float())
        model.module.text_projection.bias.copy_(torch.from_numpy(b).float())

    # 4. Zero-shot on the photos among all 1000 class prompts; temperature matched to the backbone's head.
    text = ensemble(x_t, w, b)  # what encode_texts gives per prompt, averaged over the templates
    pixels = model.preprocess(list(photos.values()))
    img = model.encode_images(pixels).double().numpy()
    with torch.inference_mode():
        feats = backbone(pixels).double().numpy()
    head = torch.softmax(torch.from_numpy(feats @ fc_w.T + fc_b), -1).numpy()
    cos = img @ text.T

    def kl(scale: float) -> float:
        q = torch.log_softmax(torch.from_numpy(scale * cos), -1).numpy()
        return float((head * (np.log(np.maximum(head, 1e-12)) - q)).sum(1).mean())

    scale = min(SCALES, key=kl)
    spec["logit_scale"] = scale
    probs = torch.softmax(torch.from_numpy(scale * cos), -1).numpy()
    photo_results = {}
    for i, photo in enumerate(photos):
        top = np.argsort(-probs[i])[:5]
        photo_results[photo] = {
            "zero_shot_top5": [[names[j], round(float(probs[i, j]), 4)] for j in top],
            "backbone_head_top1": names[int(head[i].argmax())],
            "accepted": PHOTOS[photo],
        }
    sims = rows @ model.encode_texts(["tabby cat"])[0].double().numpy()
    tabby_rank = int((sims > sims[281]).sum()) + 1
    spec["fit"] = {
        "method": "ridge map, prompt embeddings -> L2-normalised ImageNet classifier rows",
        "templates": TEMPLATES,
        "ridge_lambda": lam,
        "heldout_top1_among_100": {str(k): round(float(np.mean(v)), 4) for k, v in folds.items()},
        "heldout_top1_among_100_chosen": round(float(np.mean(folds[lam])), 4),
        "heldout_first_fold_top1": round(folds[lam][0], 4),
        "normalisation_check": norm_check,
        "normalisation": best_norm,
        "logit_scale_grid_kl_to_backbone_head": {str(s): round(kl(s), 4) for s in SCALES},
        "sample_photos": photo_results,
        "tabby_cat_rank_of_class_281_row": tabby_rank,
    }
    weights = {
        "text_projection.weight": model.module.text_projection.weight.detach().contiguous(),
        "text_projection.bias": model.module.text_projection.bias.detach().contiguous(),
    }
    atomic_write(
        out / PROJECTION_NAME, lambda p: save_file(weights, str(p), metadata={"ridge_lambda": str(lam)})
    )
    atomic_write_json(out / SPEC_NAME, spec)
    print(json.dumps({k: spec["fit"][k] for k in ("ridge_lambda", "heldout_top1_among_100_chosen")}))
    for photo, r in photo_results.items():
        print(f"{photo:18s} head={r['backbone_head_top1']!r:24s} zero-shot={r['zero_shot_top5'][:3]}")
    print(f"logit_scale={scale}  tabby cat -> class 281 rank {tabby_rank}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
