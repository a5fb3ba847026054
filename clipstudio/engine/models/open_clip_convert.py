"""open_clip state dicts -> transformers modules: timm ViT -> ``ViTModel``, open_clip ViT CLIP -> ``CLIPModel``.

Pure tensor renaming (and the one split of a fused qkv projection), checked key by key: a tensor
this mapping doesn't know is a part transformers' model lacks, and the checkpoint is refused
rather than silently loaded without it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from clipstudio.engine.errors import ModelError

State = dict[str, torch.Tensor]

# timm ViT size word -> attention heads (vit_huge/giant don't follow width // 64).
TIMM_VIT_HEADS = {"tiny": 3, "small": 6, "medium": 8, "base": 12, "large": 16, "huge": 16, "giant": 16}
TIMM_VIT_LAYER_NORM_EPS = 1e-6  # timm's ViT LayerNorm; transformers' ViT default is 1e-12
CLIP_LAYER_NORM_EPS = 1e-5
_TIMM_BLOCK_PARTS = ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2")


def sub_state(state: State, prefix: str) -> State:
    """The tensors under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def count_blocks(state: State, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if found != set(range(len(found))):
        raise ModelError(f"The checkpoint's {prefix}* blocks are not numbered 0..n-1.")
    return len(found)


def _refuse_unknown(state: State, used: set[str], what: str) -> None:
    extra = sorted(set(state) - used)
    if extra:
        shown = ", ".join(extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise ModelError(f"The {what} has parts CLIP Studio can't map onto transformers ({shown}).")


def _grid_image_size(tokens: int, patch: int, what: str) -> int:
    grid = math.isqrt(tokens - 1)
    if grid * grid != tokens - 1:
        raise ModelError(
            f"The {what} has {tokens} position embeddings; expected a class token plus a square grid."
        )
    return grid * patch


# --- timm ViT -> transformers ViTModel -----------------------------------------------------------


def timm_vit_config(trunk: State, model_name: str, head_width: int = 64) -> dict[str, Any]:
    """transformers ``ViTConfig`` arguments for a timm ViT trunk state dict (dims from the tensors)."""
    try:
        width = int(trunk["cls_token"].shape[-1])
        patch = int(trunk["patch_embed.proj.weight"].shape[-1])
        tokens = int(trunk["pos_embed"].shape[1])
        intermediate = int(trunk["blocks.0.mlp.fc1.weight"].shape[0])
    except KeyError as exc:
        raise ModelError(
            f"timm model {model_name!r} is not a plain ViT with a class token (no {exc.args[0]!r})."
        ) from None
    size_word = re.match(r"vit_([a-z]+)_", model_name)
    heads = TIMM_VIT_HEADS.get(size_word.group(1) if size_word else "", width // head_width)
    if heads < 1 or width % heads:
        raise ModelError(f"Can't tell the attention heads of timm model {model_name!r} (width {width}).")
    return {
        "hidden_size": width,
        "num_hidden_layers": count_blocks(trunk, "blocks."),
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "image_size": _grid_image_size(tokens, patch, f"timm model {model_name!r}"),
        "patch_size": patch,
        "num_channels": 3,
        "qkv_bias": "blocks.0.attn.qkv.bias" in trunk,
        "layer_norm_eps": TIMM_VIT_LAYER_NORM_EPS,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }


def _vit_layout(target_keys: set[str]) -> tuple[str, dict[str, str], tuple[str, str, str]]:
    """transformers' ViT parameter names: the refactored ones (5.x) or the older BERT-like ones."""
    if "layers.0.attention.q_proj.weight" in target_keys:
        parts = {
            "norm1": "layernorm_before",
            "norm2": "layernorm_after",
            "attn.proj": "attention.o_proj",
            "mlp.fc1": "mlp.fc1",
            "mlp.fc2": "mlp.fc2",
        }
        return "layers.{}.", parts, ("attention.q_proj", "attention.k_proj", "attention.v_proj")
    parts = {
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "attn.proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    qkv = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
    return "encoder.layer.{}.", parts, qkv


def timm_vit_to_hf(trunk: State, target_keys: set[str], model_name: str) -> State:
    """A timm ViT trunk state dict renamed for transformers' ``ViTModel`` (whose keys are ``target_keys``)."""
    block, parts, qkv_names = _vit_layout(target_keys)
    out: State = {
        "embeddings.cls_token": trunk["cls_token"],
        "embeddings.position_embeddings": trunk["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": trunk["patch_embed.proj.weight"],
        "layernorm.weight": trunk["norm.weight"],
        "layernorm.bias": trunk["norm.bias"],
    }
    used = {"cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight", "norm.bias"}
    if "patch_embed.proj.bias" in trunk:
        out["embeddings.patch_embeddings.projection.bias"] = trunk["patch_embed.proj.bias"]
        used.add("patch_embed.proj.bias")
    for i in range(count_blocks(trunk, "blocks.")):
        src, dst = f"blocks.{i}.", block.format(i)
        for kind in ("weight", "bias"):
            for part, name in parts.items():
                key = f"{src}{part}.{kind}"
                if key in trunk:
                    out[f"{dst}{name}.{kind}"] = trunk[key]
                    used.add(key)
            key = f"{src}attn.qkv.{kind}"
            if key in trunk:
                for name, tensor in zip(qkv_names, trunk[key].chunk(3, dim=0), strict=True):
                    out[f"{dst}{name}.{kind}"] = tensor
                used.add(key)
    _refuse_unknown(trunk, used, f"timm model {model_name!r}")
    return out


# --- open_clip ViT CLIP -> transformers CLIPModel ------------------------------------------------


def _clip_tower(src_state: State, src: str, dst: str, layers: int) -> tuple[State, set[str]]:
    """One open_clip transformer (``src`` + ``transformer.resblocks.N``) renamed to CLIP encoder layers."""
    out: State = {}
    used: set[str] = set()
    renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}  # fmt: skip
    for i in range(layers):
        s, d = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
        for kind in ("weight", "bias"):
            for old, new in renames.items():
                out[f"{d}{new}.{kind}"] = src_state[f"{s}{old}.{kind}"]
                used.add(f"{s}{old}.{kind}")
            fused = src_state[f"{s}attn.in_proj_{kind}"]
            used.add(f"{s}attn.in_proj_{kind}")
            for name, tensor in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3, dim=0), strict=True):
                out[f"{d}self_attn.{name}.{kind}"] = tensor
    return out, used


def clip_vit_configs(state: State, vision_cfg: dict[str, Any], text_cfg: dict[str, Any]) -> dict[str, Any]:
    """transformers ``CLIPConfig`` tower arguments (dims from the tensors, heads from the config)."""
    text = "text." if "text.token_embedding.weight" in state else ""
    try:
        width = int(state["visual.conv1.weight"].shape[0])
        patch = int(state["visual.conv1.weight"].shape[-1])
        tokens = int(state["visual.positional_embedding"].shape[0])
        vocab, text_width = (int(n) for n in state[f"{text}token_embedding.weight"].shape)
        context = int(state[f"{text}positional_embedding"].shape[0])
        v_mlp = int(state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
        t_mlp = int(state[f"{text}transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
        embed_dim = int(state["visual.proj"].shape[1])
    except KeyError as exc:
        raise ModelError(f"The checkpoint is not an open_clip ViT CLIP (no {exc.args[0]!r}).") from None
    vision = {
        "hidden_size": width,
        "intermediate_size": v_mlp,
        "num_hidden_layers": count_blocks(state, "visual.transformer.resblocks."),
        "num_attention_heads": width // int(vision_cfg.get("head_width", 64)),
        "image_size": _grid_image_size(tokens, patch, "open_clip vision tower"),
        "patch_size": patch,
        "layer_norm_eps": CLIP_LAYER_NORM_EPS,
    }
    text_tower = {
        "vocab_size": vocab,
        "hidden_size": text_width,
        "intermediate_size": t_mlp,
        "num_hidden_layers": count_blocks(state, f"{text}transformer.resblocks."),
        "num_attention_heads": int(text_cfg.get("heads", 8)),
        "max_position_embeddings": context,
        "layer_norm_eps": CLIP_LAYER_NORM_EPS,
    }
    return {"vision_config": vision, "text_config": text_tower, "projection_dim": embed_dim}


def clip_vit_to_hf(state: State) -> State:
    """An open_clip ViT CLIP state dict renamed for transformers' ``CLIPModel``."""
    text = "text." if "text.token_embedding.weight" in state else ""
    v_layers = count_blocks(state, "visual.transformer.resblocks.")
    t_layers = count_blocks(state, f"{text}transformer.resblocks.")
    out, used = _clip_tower(state, "visual.", "vision_model.", v_layers)
    text_out, text_used = _clip_tower(state, text, "text_model.", t_layers)
    out.update(text_out)
    used |= text_used
    direct = {
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
        "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
        "vision_model.post_layernorm.weight": "visual.ln_post.weight",
        "vision_model.post_layernorm.bias": "visual.ln_post.bias",
        "text_model.embeddings.token_embedding.weight": f"{text}token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": f"{text}positional_embedding",
        "text_model.final_layer_norm.weight": f"{text}ln_final.weight",
        "text_model.final_layer_norm.bias": f"{text}ln_final.bias",
        "logit_scale": "logit_scale",
    }
    try:
        for dst, src in direct.items():
            out[dst] = state[src]
            used.add(src)
        # open_clip multiplies x @ proj; transformers' Linear computes x @ W.T
        out["visual_projection.weight"] = state["visual.proj"].t().contiguous()
        out["text_projection.weight"] = state[f"{text}text_projection"].t().contiguous()
    except KeyError as exc:
        raise ModelError(f"The open_clip checkpoint lacks {exc.args[0]!r}.") from None
    used |= {"visual.proj", f"{text}text_projection", f"{text}attn_mask", "attn_mask"}
    _refuse_unknown(state, used, "open_clip checkpoint")
    out["logit_scale"] = out["logit_scale"].reshape(())
    return out
