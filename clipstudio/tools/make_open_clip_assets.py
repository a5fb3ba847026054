"""Regenerate ``tests/assets/open_clip/``: tiny open_clip checkpoints and open_clip's own embeddings of them.

Runs in a separate reference venv with open_clip, timm and torchvision, never in the project's
``.venv`` (see issue 12 for how to build it)::

    /work/refvenv/bin/python -m clipstudio.tools.make_open_clip_assets [--datasets DIR] [--out DIR]

Two models are built by open_clip itself from custom configs, with random weights:

- ``biomedclip_tiny``: a BiomedCLIP-shaped ``CustomTextCLIP`` (a tiny timm ViT registered here,
  ``timm_pool ""``, ``timm_proj linear``; a tiny BERT text tower with an ``mlp`` projection and the
  ``cls_last_hidden_state_pooler``), saved as the Hub has BiomedCLIP: ``open_clip_pytorch_model.bin``
  and a config with the old ``proj`` / ``pooler_type`` spellings naming a second repo
  (``biomedbert_tiny``) for the text tower's config and WordPiece tokenizer.
- ``clip_quickgelu_tiny``: a standard open_clip ViT CLIP with QuickGELU, as
  ``open_clip_model.safetensors`` (fp16, to keep its 49408-token embedding small). Its tokenizer is
  OpenAI CLIP's BPE, which the tests derive from ``tests/assets/bpe_simple_vocab_16e6.txt.gz``.
  ``reference/clip_gelu_config.json`` is the same model with plain GELU.

``reference/`` holds a few real MedMNIST images (CC BY 4.0), the texts, and open_clip's L2-normalised
embeddings of both (``<model>_image.npy`` / ``<model>_text.npy``), computed through open_clip's own
preprocessing and tokenizer from the saved files (``local-dir:`` loading, so the saved weights are
what is measured).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "assets" / "open_clip"
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
TIMM_NAME = "vit_clipstudio_test_patch8_32"
BERT_REPO = "clipstudio-test/tiny-biomedbert"
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

# MedMNIST images (CC BY 4.0; never MedPix, whose licence is unclear).
IMAGES = [
    "pneumoniamnist/folders/test/pneumonia",
    "breastmnist/folders/test/malignant",
    "bloodmnist/folders/test/eosinophil",
    "retinamnist/folders/test/grade2_moderate_npdr",
    "organamnist/folders/test/liver",
]
TEXTS = [
    "a chest x-ray showing pneumonia",
    "A Breast Ultrasound with a malignant tumour.",
    "a microscopy image of an eosinophil blood cell",
    "fundus photograph",
    "an abdominal ct scan of the liver",
    # longer than the tiny BERT's context (16 tokens): truncation must match
    "a chest x-ray of a child with pneumonia in both lungs and a normal heart shown on a ct scan of the liver",
]
WORDS = sorted(
    {w.strip(".,").lower() for t in TEXTS for w in t.replace("-", " - ").split()}
    | {"scan", "image", "x", "ray"}
)


@register_model
def vit_clipstudio_test_patch8_32(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A tiny timm ViT (32 px, patch 8, width 32, 2 blocks, 2 heads) standing in for vit_base_patch16_224."""
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)  # timm's factory passes these to registered builders
    model = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, **kwargs
    )
    model.pretrained_cfg = model.default_cfg = {}
    return model


def write_tiny_bert(folder: Path) -> None:
    """A tiny BERT repo: config.json + a small lower-case WordPiece vocab.txt + tokenizer_config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "-", ".", ",", *WORDS, "##s", "##ed"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
    config = {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 32,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), "utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 32}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), "utf-8")


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere (LayerNorms and biases included), so a mis-mapped tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                param.add_(torch.randn(param.shape, generator=gen) * 0.05)


def reference_images(datasets: Path, out: Path) -> list[Path]:
    """One image per listed class folder, plus two non-square crops of the first RGB one."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, folder in enumerate(IMAGES):
        source = sorted((datasets / folder).glob("*.png"))[0]
        target = out / f"{i}_{folder.split('/')[0]}.png"
        shutil.copyfile(source, target)
        paths.append(target)
    rgb = Image.open(paths[2]).convert("RGB")
    crop = rgb.crop((0, 3, 28, 25))  # 28 x 22: resized long side is truncated
    crop_path = out / "5_bloodmnist_crop.png"
    crop.save(crop_path)
    # 27 x 22: resized to 39 x 32, an odd margin of 7, which torchvision's CenterCrop starts at 4 (not 3)
    odd = rgb.crop((0, 3, 27, 25))
    odd_path = out / "6_bloodmnist_odd_crop.png"
    odd.save(odd_path)
    return [*paths, crop_path, odd_path]


def open_clip_embeddings(folder: Path, images: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """open_clip's own L2-normalised image and text embeddings of a ``local-dir:`` model folder."""
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    pixels = torch.stack([preprocess(Image.open(p)) for p in images])
    with torch.no_grad():
        image = model.encode_image(pixels, normalize=True)
        text = model.encode_text(tokenizer(TEXTS), normalize=True)
    return image.numpy().astype(np.float32), text.numpy().astype(np.float32)


def make_biomedclip(out: Path, scratch: Path, images: list[Path], reference: Path) -> None:
    bert_dir = out / "biomedbert_tiny"
    write_tiny_bert(bert_dir)
    work = scratch / "biomedclip"
    shutil.copytree(bert_dir, work)  # local-dir: open_clip reads the HF tokenizer from the model folder
    vision_cfg = {
        "timm_model_name": TIMM_NAME,
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": 32,
        # open_clip ignores this for timm towers; CLIP Studio reads heads from it for timm names it
        # doesn't know (vit_base_* etc. have a table), as width // head_width.
        "head_width": 16,
    }
    text_cfg = {"hf_model_name": str(bert_dir), "hf_tokenizer_name": str(bert_dir), "context_length": 16}
    preprocess_cfg = {"mean": OPENAI_MEAN, "std": OPENAI_STD}
    new_spelling = {"hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler"}
    model_cfg = {"embed_dim": 16, "vision_cfg": vision_cfg, "text_cfg": {**text_cfg, **new_spelling}}
    (work / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2), "utf-8"
    )
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{work}", pretrained_hf=False)
    perturb(model, seed=1)
    torch.save(model.state_dict(), work / "open_clip_pytorch_model.bin")
    image, text = open_clip_embeddings(work, images)
    np.save(reference / "biomedclip_tiny_image.npy", image)
    np.save(reference / "biomedclip_tiny_text.npy", text)

    target = out / "biomedclip_tiny"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "open_clip_pytorch_model.bin", target / "open_clip_pytorch_model.bin")
    # As BiomedCLIP's Hub config: the text tower named by repo id, the old option spellings.
    hub_text_cfg = {
        "hf_model_name": BERT_REPO,
        "hf_tokenizer_name": BERT_REPO,
        "proj": "mlp",
        "pooler_type": "cls_last_hidden_state_pooler",
        "context_length": 16,
    }
    hub_cfg = {"model_cfg": {"embed_dim": 16, "vision_cfg": vision_cfg, "text_cfg": hub_text_cfg}}
    (target / "open_clip_config.json").write_text(
        json.dumps({**hub_cfg, "preprocess_cfg": preprocess_cfg}, indent=2), "utf-8"
    )


def make_clip(out: Path, scratch: Path, images: list[Path], reference: Path) -> None:
    model_cfg = {
        "embed_dim": 16,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 2},
    }
    preprocess_cfg = {
        "mean": OPENAI_MEAN,
        "std": OPENAI_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    work = scratch / "clip"
    work.mkdir()
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (work / "open_clip_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    torch.manual_seed(2)
    model = open_clip.create_model(f"local-dir:{work}")
    perturb(model, seed=3)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(work / "open_clip_model.safetensors"))
    image, text = open_clip_embeddings(work, images)
    np.save(reference / "clip_quickgelu_tiny_image.npy", image)
    np.save(reference / "clip_quickgelu_tiny_text.npy", text)
    target = out / "clip_quickgelu_tiny"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "open_clip_model.safetensors", target / "open_clip_model.safetensors")
    shutil.copyfile(work / "open_clip_config.json", target / "open_clip_config.json")

    # The same weights read as plain GELU: what a wrongly guessed activation would give.
    gelu_cfg = {"model_cfg": {**model_cfg, "quick_gelu": False}, "preprocess_cfg": preprocess_cfg}
    (work / "open_clip_config.json").write_text(json.dumps(gelu_cfg, indent=2), "utf-8")
    shutil.copyfile(work / "open_clip_config.json", reference / "clip_gelu_config.json")
    image, text = open_clip_embeddings(work, images)
    np.save(reference / "clip_gelu_tiny_image.npy", image)
    np.save(reference / "clip_gelu_tiny_text.npy", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="the shared datasets folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the assets go")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    assert TIMM_NAME in timm.list_models(TIMM_NAME)
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    reference = out / "reference"
    images = reference_images(args.datasets, reference / "images")
    (reference / "texts.json").write_text(json.dumps(TEXTS, indent=2), "utf-8")
    (reference / "images.json").write_text(json.dumps([p.name for p in images], indent=2), "utf-8")
    with tempfile.TemporaryDirectory(prefix="open-clip-assets-") as tmp:
        make_biomedclip(out, Path(tmp), images, reference)
        make_clip(out, Path(tmp), images, reference)
    versions = {"open_clip": open_clip.__version__, "timm": timm.__version__, "torch": torch.__version__}
    (reference / "versions.json").write_text(json.dumps(versions, indent=2), "utf-8")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
