"""``--format hf``: a folder plain transformers (and torch) load, with a README saying exactly how.

Hugging Face CLIP models (and open_clip standard ViTs, which load as one) become a ``CLIPModel``
folder: ``CLIPModel.from_pretrained(folder)``. Dual encoders and ViT + HF-text models have no
transformers class of their own: their weights (one ``model.safetensors``), the towers' configs
and the tokenizer are written as CLIP Studio saves them, and ``README.md`` holds the code that
rebuilds them from transformers/torch classes. LoRA runs need nothing here: a run saves its
adapters merged into the weights. A linear-probe run adds its class head (``linear_head.*``), a
Tip-Adapter run its cache (``tip_adapter_cache.safetensors``, ``tip_adapter.json``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from clipstudio.engine.errors import ModelError
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.models.dual_encoder import DualEncoderModel
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.models.linear_probe_head import HEAD_INFO, HEAD_WEIGHTS, LinearProbeModel, save_head
from clipstudio.engine.models.tip_adapter_head import (
    CACHE_INFO,
    CACHE_WEIGHTS,
    FORMULA,
    TipAdapterModel,
    save_cache,
)
from clipstudio.engine.models.vit_hf_text import ViTHFTextModel
from clipstudio.engine.storage.atomic import atomic_write_text

README_NAME = "README.md"


def export_hf(model: ImageTextModel, folder: Path) -> str:
    """Write ``model`` into ``folder`` for plain transformers; returns the layout ("clip_model" or the model kind)."""
    base = model.base if isinstance(model, LinearProbeModel | TipAdapterModel) else model
    if isinstance(base, HFClipModel):
        base.model.save_pretrained(folder)
        base.tokenizer.save_pretrained(folder)
        base.image_processor.save_pretrained(folder)
        layout, readme = "clip_model", clip_readme(base)
    elif isinstance(base, DualEncoderModel):
        base.save(folder)
        layout, readme = base.kind, dual_encoder_readme(base)
    elif isinstance(base, ViTHFTextModel):
        base.save(folder)
        layout, readme = base.kind, vit_hf_text_readme(base)
    else:
        raise ModelError(
            f"A {base.kind!r} model can't be exported in Hugging Face form; "
            "supported: Hugging Face CLIP, dual encoders (the built-in model), ViT + HF text models."
        )
    if isinstance(model, LinearProbeModel):
        head = model.head.as_affine()
        save_head(folder, torch.from_numpy(head.rows), torch.from_numpy(head.bias), model.class_names)
        readme += LINEAR_HEAD_README.format(weights=HEAD_WEIGHTS, info=HEAD_INFO)
    if isinstance(model, TipAdapterModel):
        save_cache(folder, model.cache, model.class_names)
        readme += TIP_ADAPTER_README.format(weights=CACHE_WEIGHTS, info=CACHE_INFO, formula=FORMULA)
    atomic_write_text(folder / README_NAME, readme)
    return layout


def clip_readme(model: HFClipModel) -> str:
    return f"""# CLIP model exported by CLIP Studio

A Hugging Face CLIP model (from {model.source or "a CLIP Studio run"}); plain transformers loads it:

```python
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

FOLDER = "."  # this folder
model = CLIPModel.from_pretrained(FOLDER).eval()
tokenizer = AutoTokenizer.from_pretrained(FOLDER)
processor = AutoImageProcessor.from_pretrained(FOLDER)
with torch.no_grad():
    pixels = processor(images=[Image.open("image.png").convert("RGB")], return_tensors="pt")["pixel_values"]
    image_emb = model.get_image_features(pixel_values=pixels).pooler_output  # a tensor in transformers 4
    tokens = tokenizer(["a chest X-ray"], padding=True, truncation=True, return_tensors="pt")
    text_emb = model.get_text_features(**tokens).pooler_output
image_emb = torch.nn.functional.normalize(image_emb, dim=-1)
text_emb = torch.nn.functional.normalize(text_emb, dim=-1)
```
""" + (OPEN_CLIP_CROP_NOTE if model.crop_offset == "round" else "")


OPEN_CLIP_CROP_NOTE = """
This model comes from open_clip, which centre-crops as torchvision's `CenterCrop` does: the crop starts
at `int(round(margin / 2))`, where the processor above starts at `margin // 2`. Where the resized image
leaves an odd margin the two crops differ by one pixel. To get CLIP Studio's embeddings exactly,
preprocess with torchvision instead: `Resize(size, interpolation=BICUBIC)`, `CenterCrop(size)`,
`ToTensor()`, `Normalize(processor.image_mean, processor.image_std)`.
"""


def dual_encoder_readme(model: DualEncoderModel) -> str:
    m = model.module
    backbone = model.image_backbone
    return f"""# Dual encoder exported by CLIP Studio

`model.safetensors` holds every weight, `clipstudio_model.json` how the parts fit, `text_encoder/` the
text encoder's config and tokenizer. Weight names: `text_encoder.*` (a transformers
`{type(m.text_encoder).__name__}`), `text_projection.*` and `image_projection.*` (torch `Linear`),
`image_backbone.*` (CLIP Studio's `{backbone}` backbone, config `{model.image_backbone_config}`),
`logit_scale` (log of the logit scale). The text side, with plain transformers and torch:

```python
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

FOLDER = "."  # this folder
state = load_file(f"{{FOLDER}}/model.safetensors")
part = lambda prefix: {{k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}}
text_encoder = AutoModel.from_config(AutoConfig.from_pretrained(f"{{FOLDER}}/text_encoder")).eval()
text_encoder.load_state_dict(part("text_encoder."))
tokenizer = AutoTokenizer.from_pretrained(f"{{FOLDER}}/text_encoder")
projection = torch.nn.Linear({m.text_projection.in_features}, {m.text_projection.out_features}, bias={m.text_projection.bias is not None})
projection.load_state_dict(part("text_projection."))


def text_embeddings(texts):
    tokens = tokenizer(texts, padding=True, truncation=True, max_length={model.max_text_tokens}, return_tensors="pt")
    with torch.no_grad():
        hidden = text_encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean over real tokens
        if {m.text_normalize}:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return torch.nn.functional.normalize(projection(pooled), dim=-1)
```

The image side is a CLIP Studio backbone, not a transformers class: rebuild it with
`clipstudio.engine.models.backbones.build_backbone("{backbone}", config)` and `image_projection`, or
export the model with `clipstudio export --format onnx` for an image encoder any runtime can run.
Preprocessing: {model.preprocessing.to_dict()} (shorter side resized, centre crop, x / 255, (x - mean) / std).
"""


def vit_hf_text_readme(model: ViTHFTextModel) -> str:
    m = model.module
    pooling = {
        "cls": "out.last_hidden_state[:, 0]",
        "pooler_output": "out.pooler_output",
        "mean": "(out.last_hidden_state * mask).sum(1) / mask.sum(1)",
    }[m.text_pooling]
    width, dim = m.text_tower.config.hidden_size, model.embed_dim
    if m.text_projection_kind == "mlp":
        hidden = (width + dim) // 2
        projection = (f"torch.nn.Sequential(torch.nn.Linear({width}, {hidden}, bias=False), torch.nn.GELU(), "
                      f"torch.nn.Linear({hidden}, {dim}, bias=False))")
    elif m.text_projection_kind == "linear":
        projection = f"torch.nn.Linear({width}, {dim}, bias=False)"
    else:
        projection = "torch.nn.Identity()"
    image_bias = m.image_projection.bias is not None
    return f"""# ViT + text-encoder CLIP exported by CLIP Studio

`model.safetensors` holds every weight: `image_tower.*` (a transformers `ViTModel` without pooling
layer, config in `image_tower/`), `image_projection.*`, `text_tower.*` (a transformers
`{type(m.text_tower).__name__}`, config and tokenizer in `text_encoder/`), `text_projection.*`,
`logit_scale` (log of the logit scale). Rebuilt with plain transformers and torch:

```python
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, ViTConfig, ViTModel

FOLDER = "."  # this folder
state = load_file(f"{{FOLDER}}/model.safetensors")
part = lambda prefix: {{k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}}
image_tower = ViTModel(ViTConfig.from_pretrained(f"{{FOLDER}}/image_tower"), add_pooling_layer=False).eval()
image_tower.load_state_dict(part("image_tower."))
image_projection = torch.nn.Linear({m.image_projection.in_features}, {dim}, bias={image_bias})
image_projection.load_state_dict(part("image_projection."))
text_config = AutoConfig.from_pretrained(f"{{FOLDER}}/text_encoder")
text_tower = AutoModel.from_config(text_config, add_pooling_layer={m.text_pooling == "pooler_output"}).eval()
text_tower.load_state_dict(part("text_tower."))
tokenizer = AutoTokenizer.from_pretrained(f"{{FOLDER}}/text_encoder")
text_projection = {projection}
text_projection.load_state_dict(part("text_projection."))


def image_embeddings(pixel_values):  # (N, 3, {model.preprocessing.image_size}, {model.preprocessing.image_size}), preprocessed as below
    with torch.no_grad():
        cls = image_tower(pixel_values=pixel_values).last_hidden_state[:, 0]
        return torch.nn.functional.normalize(image_projection(cls), dim=-1)


def text_embeddings(texts):
    tokens = tokenizer(texts, padding=True, truncation=True, max_length={model.max_text_tokens}, return_tensors="pt")
    with torch.no_grad():
        out = text_tower(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        mask = tokens["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
        return torch.nn.functional.normalize(text_projection({pooling}), dim=-1)
```

Preprocessing: {model.preprocessing.to_dict()} (shorter side resized, centre crop, x / 255, (x - mean) / std).
"""


LINEAR_HEAD_README = """
## Linear-probe class head

`{weights}` (tensors `weight`, classes x embedding dimension, and `bias`, one per class) and `{info}`
(class names) are the run's trained head, a logistic regression on the L2-normalised image
embedding: `logits = weight @ embedding + bias` (softmax for probabilities); the highest is the
predicted class.
"""


TIP_ADAPTER_README = """
## Tip-Adapter cache

`{weights}` (tensors `keys`, training images x embedding dimension, `values`, their one-hot
classes, and `class_embeddings`, the zero-shot class text embeddings, one unit row per class) and
`{info}` (class names, `alpha`, `beta`, `logit_scale`) are the run's Tip-Adapter classifier
(Zhang et al., ECCV 2022), on the image embedding (L2-normalised, `unit`):

    {formula}

Softmax for probabilities; the highest is the predicted class. `alpha` = 0 is plain zero-shot.
"""
