"""Zero-shot of the built-in model on scikit-image's sample photos, among the photos' own 7 labels.

    .venv/bin/pip install -c installer/constraints.txt scikit-image   # optional, for this script only
    .venv/bin/python -m bench.builtin_photos
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _rgb(a) -> Image.Image:
    a = np.asarray(a)
    if a.dtype == bool:
        a = (a * 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return Image.fromarray(a.astype(np.uint8)).convert("RGB")


def main() -> int:
    from skimage import data

    from clipstudio.engine.evaluation.zero_shot import class_text_embeddings
    from clipstudio.engine.models import load_model
    from clipstudio.engine.prompts import PromptSet

    model = load_model("builtin")
    photos = {"cat": data.chelsea(), "rocket": data.rocket(), "coffee": data.coffee(), "horse": data.horse(),
              "coins": data.coins(), "camera": data.camera(), "astronaut": data.astronaut()}
    names = list(photos)
    emb = model.encode_images(model.preprocess([_rgb(v) for v in photos.values()])).numpy()
    for label, prompts in (("'a photo of a {class_name}.'", PromptSet(templates=["a photo of a {class_name}."])),
                           ("default ensemble", PromptSet())):
        pred = (emb @ class_text_embeddings(model, names, prompts).T).argmax(1)
        pairs = [(n, names[p]) for n, p in zip(names, pred, strict=True)]
        print(f"{label}: {sum(a == b for a, b in pairs)}/{len(names)} correct: {pairs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
