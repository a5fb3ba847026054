"""A BiomedCLIP-shaped model at full size through the real CLI, offline: times and peak memory per command.

Builds ViT-B/16 (224 px) + BERT-base (context 256, MLP text projection) with random weights, laid out
as the Hub has BiomedCLIP (``open_clip_config.json`` + ``open_clip_pytorch_model.bin``, the text
tower's config and WordPiece vocabulary in a second repo) in a temporary Hugging Face cache. Then,
with ``HF_HUB_OFFLINE=1`` and one torch thread, runs ``clipstudio`` zeroshot, retrieve, search, embed,
train (lora, linear_probe, full: 1 epoch, batch 4) and export --format hf on 24 PneumoniaMNIST
images and 24 MedPix image-caption pairs. Each command is a child process: its wall time and peak
RSS (``os.wait4``) are recorded. Random weights: the accuracies mean nothing, the costs do.

    python -m bench.biomedclip_full_size          # ~15-25 minutes on one core; writes out/biomedclip_full_size.*
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DATASETS, machine, markdown_table, out_dir
from tests.fixtures_models import hf_cache_snapshot

REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
TEXT_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
VOCAB_SIZE = 30522  # BERT-base uncased
EMBED_DIM, WIDTH, LAYERS, HEADS, MLP = 512, 768, 12, 12, 3072
IMAGE_SIZE, PATCH, CONTEXT = 224, 16, 256
IMAGES_PER_CLASS = 12
PAIRS = 24
COLUMNS = ["row", "seconds", "peak_rss_mib", "result"]

OPEN_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {
            "timm_model_name": "vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": IMAGE_SIZE,
        },
        "text_cfg": {
            "hf_model_name": TEXT_REPO,
            "hf_tokenizer_name": TEXT_REPO,
            "proj": "mlp",
            "pooler_type": "cls_last_hidden_state_pooler",
            "context_length": CONTEXT,
        },
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}
BERT_CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": WIDTH,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": MLP,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def random_state() -> dict:
    """open_clip's state dict of BiomedCLIP's architecture (timm ViT trunk + HF BERT), random weights."""
    import torch

    gen = torch.Generator().manual_seed(0)

    def weight(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.02

    state = {
        "logit_scale": torch.tensor(math.log(1 / 0.07)),
        "visual.trunk.cls_token": weight(1, 1, WIDTH),
        "visual.trunk.pos_embed": weight(1, (IMAGE_SIZE // PATCH) ** 2 + 1, WIDTH),
        "visual.trunk.patch_embed.proj.weight": weight(WIDTH, 3, PATCH, PATCH),
        "visual.trunk.patch_embed.proj.bias": torch.zeros(WIDTH),
        "visual.trunk.norm.weight": torch.ones(WIDTH),
        "visual.trunk.norm.bias": torch.zeros(WIDTH),
        "visual.head.proj.weight": weight(EMBED_DIM, WIDTH),
    }
    for i in range(LAYERS):
        block = f"visual.trunk.blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[f"{block}{norm}.weight"], state[f"{block}{norm}.bias"] = torch.ones(WIDTH), torch.zeros(WIDTH)
        for name, rows, cols in (("attn.qkv", 3 * WIDTH, WIDTH), ("attn.proj", WIDTH, WIDTH),
                                 ("mlp.fc1", MLP, WIDTH), ("mlp.fc2", WIDTH, MLP)):  # fmt: skip
            state[f"{block}{name}.weight"], state[f"{block}{name}.bias"] = weight(rows, cols), torch.zeros(rows)
    text = "text.transformer."
    state[f"{text}embeddings.word_embeddings.weight"] = weight(VOCAB_SIZE, WIDTH)
    state[f"{text}embeddings.position_embeddings.weight"] = weight(512, WIDTH)
    state[f"{text}embeddings.token_type_embeddings.weight"] = weight(2, WIDTH)
    state[f"{text}embeddings.LayerNorm.weight"] = torch.ones(WIDTH)
    state[f"{text}embeddings.LayerNorm.bias"] = torch.zeros(WIDTH)
    for i in range(LAYERS):
        layer = f"{text}encoder.layer.{i}."
        for name, rows, cols in (("attention.self.query", WIDTH, WIDTH), ("attention.self.key", WIDTH, WIDTH),
                                 ("attention.self.value", WIDTH, WIDTH), ("attention.output.dense", WIDTH, WIDTH),
                                 ("intermediate.dense", MLP, WIDTH), ("output.dense", WIDTH, MLP)):  # fmt: skip
            state[f"{layer}{name}.weight"], state[f"{layer}{name}.bias"] = weight(rows, cols), torch.zeros(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[f"{layer}{norm}.weight"], state[f"{layer}{norm}.bias"] = torch.ones(WIDTH), torch.zeros(WIDTH)
    hidden = (WIDTH + EMBED_DIM) // 2  # open_clip's MLP projection
    state["text.proj.0.weight"] = weight(hidden, WIDTH)
    state["text.proj.2.weight"] = weight(EMBED_DIM, hidden)
    return state


def wordpiece_vocab() -> list[str]:
    """A BERT-sized uncased WordPiece vocabulary: specials, characters, the prompts' words, fillers."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    words += chars + [f"##{c}" for c in chars if c.isalnum()]
    words += "a an the of photo chest x ray xray showing normal pneumonia lungs image with".split()
    words = list(dict.fromkeys(words))
    return words + [f"[unused{i}]" for i in range(VOCAB_SIZE - len(words))]


def add_repo(cache: Path, repo_id: str, files: dict[str, Path | str]) -> None:
    """``files`` (moved there, or written from text) in ``repo_id``'s snapshot in the Hugging Face cache ``cache``."""
    snapshot = hf_cache_snapshot(cache, repo_id)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.move(content, snapshot / name)
        else:
            (snapshot / name).write_text(content, encoding="utf-8")


def build_cache(cache: Path, scratch: Path) -> float:
    """Both repos in ``cache``; returns the size of the weights file in MiB."""
    import torch

    weights = scratch / "open_clip_pytorch_model.bin"
    torch.save(random_state(), weights)
    size_mib = weights.stat().st_size / 2**20
    add_repo(cache, REPO, {"open_clip_config.json": json.dumps(OPEN_CLIP_CONFIG, indent=2), weights.name: weights})
    add_repo(cache, TEXT_REPO, {
        "config.json": json.dumps(BERT_CONFIG, indent=2),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True,
                                              "model_max_length": 512}),
        "vocab.txt": "\n".join(wordpiece_vocab()) + "\n",
    })  # fmt: skip
    return size_mib


def build_data(root: Path) -> tuple[Path, Path]:
    """24 PneumoniaMNIST training images as class folders, and 24 MedPix image-caption pairs."""
    classes = root / "pneumonia"
    source = DATASETS / "pneumoniamnist" / "folders" / "train"
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (classes / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:IMAGES_PER_CLASS]:
            shutil.copyfile(image, classes / folder.name / image.name)
    pairs = root / "pairs"
    medpix = DATASETS / "medpix2_caption" / "pairs" / "val"
    entries = json.loads((medpix / "img_text_pair.json").read_text(encoding="utf-8"))[:PAIRS]
    (pairs / "imgs").mkdir(parents=True)
    for entry in entries:
        shutil.copyfile(medpix / "imgs" / entry["img"], pairs / "imgs" / entry["img"])
    (pairs / "img_text_pair.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return classes, pairs


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """``clipstudio ARGV`` in a child process: (seconds, peak RSS in MiB, exit code, last output line)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "clipstudio", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    lines = [line for line in output.splitlines() if line.strip()]
    return seconds, usage.ru_maxrss / 1024, proc.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="biomedclip_full_"))
    try:
        cache = tmp / "hf" / "hub"
        t0 = time.perf_counter()
        weights_mib = build_cache(cache, tmp)
        build_s = time.perf_counter() - t0
        classes, pairs = build_data(tmp / "data")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"), "HF_HUB_CACHE": str(cache),
               "CLIPSTUDIO_HOME": str(tmp / "home"), "CLIPSTUDIO_CACHE_DIR": str(tmp / "cache"),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
        runs = tmp / "runs"
        common = ["--model", REPO, "--device", "cpu"]
        train = ["--epochs", "1", "--batch-size", "4", "--device", "cpu", "--model", REPO]
        commands = [
            ("zeroshot (first load: converts the .bin once)", ["zeroshot", str(classes), *common, "--no-cache"]),
            ("zeroshot (converted copy)", ["zeroshot", str(classes), *common, "--no-cache"]),
            ("retrieve (24 pairs)", ["retrieve", str(pairs), *common, "--no-cache"]),
            ("search --text", ["search", str(classes), *common, "--text", "a chest x-ray showing pneumonia"]),
            ("embed (24 images)", ["embed", str(classes), *common, "--output", str(tmp / "emb.npz"), "--no-cache"]),
            *[(f"train --method {m}", ["train", str(classes), "--method", m, "--output", str(runs / m), *train])
              for m in ("lora", "linear_probe", "full")],  # fmt: skip
            ("export --format hf (the full run)",
             ["export", str(runs / "full"), "--format", "hf", "--output", str(tmp / "hf_export")]),
        ]
        rows = [{"row": "build the random checkpoint (not the CLI)", "seconds": round(build_s, 1),
                 "peak_rss_mib": "", "result": f"open_clip_pytorch_model.bin {weights_mib:.0f} MiB"}]  # fmt: skip
        for name, command in commands:
            seconds, rss, code, last = run(command, env)
            rows.append({"row": name, "seconds": round(seconds, 1), "peak_rss_mib": round(rss),
                         "result": f"exit {code}: {last[:120]}"})  # fmt: skip
            print(f"{name}: {seconds:.1f} s, {rss:.0f} MiB, exit {code}", flush=True)
        folder = out_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "biomedclip_full_size.json").write_text(
            json.dumps({"machine": machine(), "torch_threads": 1, "rows": rows}, indent=2) + "\n", encoding="utf-8"
        )
        (folder / "biomedclip_full_size.md").write_text(markdown_table(rows, COLUMNS), encoding="utf-8")
        print(markdown_table(rows, COLUMNS))
        return 0 if all(str(r["result"]).startswith("exit 0") for r in rows[1:]) else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
