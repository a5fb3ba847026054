"""Model fixtures shared across test folders: tiny models built offline from configs.

``tiny_clip_dir``: a Hugging Face CLIP folder (random tiny weights, the real CLIP BPE tokenizer).
``tiny_dual_dir``: a saved CLIP Studio dual encoder (small CNN + tiny random BERT, MiniLM's tokenizer).
Both are session-scoped, read-only by convention (copy before modifying), and need no network.
``hf_cache_snapshot(cache, repo_id)``: a repo's folder in an offline Hugging Face cache, to fill.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
CLIP_BPE = ASSETS / "bpe_simple_vocab_16e6.txt.gz"
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # openai/clip-vit-base-patch32 on "a photo of a cat"


def hf_cache_snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` as the Hugging Face cache lays it out (refs/main -> snapshots/<commit>/)."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable-unicode table (same as GPT-2's)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_clip_vocab(folder: Path) -> None:
    """vocab.json + merges.txt exactly as OpenAI CLIP / open_clip's SimpleTokenizer build them."""
    lines = gzip.open(CLIP_BPE).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False), "utf-8"
    )
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random CLIPModel (32 px images, patch 4, hidden 32, 2 layers, projection 16) saved HF-style."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    write_clip_vocab(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, **small),
        vision_config=dict(image_size=32, patch_size=4, **small),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


def build_tiny_dual(folder: Path, seed: int = 0, image_size: int = 32) -> Path:
    """A tiny DualEncoder (small_cnn backbone, 2-layer BERT with MiniLM's vocabulary) saved CLIP Studio-style;
    ``image_size``: its own input size in pixels."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from clipstudio.engine.models.builtin import minilm_folder
    from clipstudio.engine.models.dual_encoder import DualEncoderModel
    from clipstudio.engine.models.image_preprocessing import ImagePreprocessing

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    bert = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
        )
    )
    model = DualEncoderModel.create(
        image_backbone="small_cnn",
        image_backbone_config={"width": 8, "depth": 2},
        text_encoder=bert,
        tokenizer=tokenizer,
        embed_dim=16,
        pretrained_image=False,
        text_encoder_name="tiny-bert",
        preprocessing=ImagePreprocessing(image_size=image_size),
    )
    return model.save(folder)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """Folder of a tiny random HF CLIP model with the real CLIP tokenizer; loads with ``load_model(path)``."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_dual_dir(tmp_path_factory) -> Path:
    """Folder of a tiny saved DualEncoder (small CNN + tiny BERT); loads with ``load_model(path)``."""
    return build_tiny_dual(tmp_path_factory.mktemp("tiny_dual"))
