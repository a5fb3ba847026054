"""``export_model``: HF folders plain transformers loads, ONNX encoders + head that onnxruntime alone classifies with."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from clipstudio.engine.errors import ConfigError, ModelError
from clipstudio.engine.evaluation.zero_shot import class_weights
from clipstudio.engine.export import onnx as onnx_export
from clipstudio.engine.export.model_export import export_model
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.prompts import run_prompt_set
from clipstudio.engine.runs.layout import read_run_info

TEXTS = ["a photo of a cat", "an X-ray of a chest with a much longer description than the others", "lung"]


@pytest.fixture(scope="module")
def tiny_vit_text_dir(tmp_path_factory):
    """A saved ViT + BERT model (the BiomedCLIP family) with an MLP text projection and CLS pooling."""
    from transformers import AutoTokenizer, BertConfig, ViTConfig

    from clipstudio.engine.models.builtin import minilm_folder
    from clipstudio.engine.models.image_preprocessing import CLIPProcessorPreprocessing
    from clipstudio.engine.models.vit_hf_text import ViTHFTextModel, ViTHFTextModule, build_towers

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    vit = ViTConfig(image_size=32, patch_size=8, layer_norm_eps=1e-6, **small)
    bert = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=64, **small)
    module = ViTHFTextModule(*build_towers(vit, bert, "cls"), 16, text_projection_kind="mlp", text_pooling="cls")
    preprocessing = CLIPProcessorPreprocessing(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = ViTHFTextModel(module.eval(), tokenizer, preprocessing, max_text_tokens=64)
    return model.save(tmp_path_factory.mktemp("tiny_vit_text"))


def fp32(model):
    getattr(model, "base", model).bf16_inference = False
    return model


def images(tmp_path, n=3):
    """Textured, non-square PNGs (resize and crop both matter)."""
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(29 + 7 * i, 45 - 4 * i, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def torch_image_embeddings(model, paths):
    return model.encode_images(model.preprocess([Image.open(p) for p in paths])).numpy()


def no_leftovers(folder):
    """Nothing but ``folder`` itself (if anything) beside it: no partial or old copies."""
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")] == []


# --- hf --------------------------------------------------------------------------------------------


def test_hf_export_of_a_clip_loads_with_plain_transformers_and_gives_the_same_embeddings(tiny_clip_dir, tmp_path):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    out = tmp_path / "hf"
    result = export_model(str(tiny_clip_dir), "hf", out)

    assert result.layout == "clip_model" and "model.safetensors" in result.files and no_leftovers(out)
    model = fp32(load_model(str(tiny_clip_dir), device="cpu"))
    plain = CLIPModel.from_pretrained(out).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(out), AutoImageProcessor.from_pretrained(out)
    paths = images(tmp_path)
    with torch.no_grad():
        pixels = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
        got_images = plain.get_image_features(pixel_values=pixels).pooler_output
        got_texts = plain.get_text_features(**tokenizer(TEXTS, padding=True, return_tensors="pt")).pooler_output
    got_images = torch.nn.functional.normalize(got_images, dim=-1).numpy()
    got_texts = torch.nn.functional.normalize(got_texts, dim=-1).numpy()
    np.testing.assert_allclose(got_images, torch_image_embeddings(model, paths), atol=1e-5)
    np.testing.assert_allclose(got_texts, model.encode_texts(TEXTS).numpy(), atol=1e-5)
    assert "CLIPModel.from_pretrained" in (out / "README.md").read_text()


@pytest.mark.slow
def test_hf_export_of_a_trained_run_holds_its_trained_weights(trained, tmp_path):
    from transformers import AutoTokenizer, CLIPModel

    out = tmp_path / "run_hf"
    export_model(str(trained["full"]), "hf", out)

    run_model = fp32(load_run_model(trained["full"], device="cpu"))
    plain = CLIPModel.from_pretrained(out).eval()
    with torch.no_grad():
        tokens = AutoTokenizer.from_pretrained(out)(TEXTS, padding=True, return_tensors="pt")
        got = torch.nn.functional.normalize(plain.get_text_features(**tokens).pooler_output, dim=-1).numpy()
    np.testing.assert_allclose(got, run_model.encode_texts(TEXTS).numpy(), atol=1e-5)
    start = fp32(load_model(str(trained["start"]), device="cpu")).encode_texts(TEXTS).numpy()
    assert np.abs(got - start).max() > 1e-4  # the run's weights, not the model it started from


@pytest.mark.slow
def test_hf_export_of_a_linear_probe_run_carries_its_class_head(trained, tmp_path):
    out = tmp_path / "probe_hf"
    export_model(str(trained["probe"]), "hf", out)

    head = json.loads((out / "linear_head.json").read_text())
    assert head["class_names"] == read_run_info(trained["probe"])["class_names"]
    tensors = load_file(str(out / "linear_head.safetensors"))
    assert tensors["weight"].shape[0] == tensors["bias"].shape[0] == len(head["class_names"])
    assert (out / "config.json").is_file() and "Linear-probe class head" in (out / "README.md").read_text()


@pytest.mark.slow
def test_hf_export_of_a_tip_adapter_run_carries_its_cache_and_onnx_refuses_it(trained, tmp_path):
    out = tmp_path / "tip_hf"
    export_model(str(trained["tip"]), "hf", out)

    info = json.loads((out / "tip_adapter.json").read_text())
    assert info["class_names"] == read_run_info(trained["tip"])["class_names"] and "exp(-beta" in info["formula"]
    tensors = load_file(str(out / "tip_adapter_cache.safetensors"))
    assert tensors["keys"].shape[0] == tensors["values"].shape[0] and tensors["values"].shape[1] == 3
    assert (out / "config.json").is_file() and "Tip-Adapter cache" in (out / "README.md").read_text()
    refused = tmp_path / "tip_onnx"
    with pytest.raises(ModelError, match="Tip-Adapter run can't be exported as ONNX.*--format hf"):
        export_model(str(trained["tip"]), "onnx", refused)
    assert not refused.exists()


def test_hf_export_of_a_dual_encoder_has_a_readme_whose_code_rebuilds_the_text_encoder(tiny_dual_dir, tmp_path):
    out = tmp_path / "dual_hf"
    result = export_model(str(tiny_dual_dir), "hf", out)

    assert result.layout == "dual_encoder" and "model.safetensors" in result.files
    code = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(code.replace('FOLDER = "."', f"FOLDER = {str(out)!r}"), namespace)  # the README's code, as a user runs it
    model = fp32(load_model(str(tiny_dual_dir), device="cpu"))
    got = namespace["text_embeddings"](TEXTS).numpy()
    np.testing.assert_allclose(got, model.encode_texts(TEXTS).numpy(), atol=1e-5)


def test_hf_export_of_a_vit_text_model_has_a_readme_whose_code_rebuilds_both_towers(tiny_vit_text_dir, tmp_path):
    out = tmp_path / "vit_hf"
    export_model(str(tiny_vit_text_dir), "hf", out)

    code = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(code.replace('FOLDER = "."', f"FOLDER = {str(out)!r}"), namespace)
    model = fp32(load_model(str(tiny_vit_text_dir), device="cpu"))
    paths = images(tmp_path)
    pixels = model.preprocess([Image.open(p) for p in paths])
    np.testing.assert_allclose(namespace["image_embeddings"](pixels).numpy(), model.encode_images(pixels).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(namespace["text_embeddings"](TEXTS).numpy(), model.encode_texts(TEXTS).numpy(),
                               atol=1e-5)


# --- onnx ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_export_of_a_clip_matches_pytorch_on_images_and_texts(tiny_clip_dir, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "onnx"
    result = export_model(str(tiny_clip_dir), "onnx", out, class_names=["cat", "dog"])

    assert result.parity["image_cosine"] >= 0.9999 and result.parity["text_cosine"] >= 0.9999
    model = fp32(load_model(str(tiny_clip_dir), device="cpu"))
    tokens = model.tokenize(TEXTS)
    session = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: tokens[k].numpy() for k in ("input_ids", "attention_mask")})[0]
    np.testing.assert_allclose(got, model.encode_texts(TEXTS).numpy(), atol=1e-5)
    head = json.loads((out / "head.json").read_text())
    assert head["class_names"] == ["cat", "dog"] and head["class_embeddings_from"] == "prompts"
    assert load_file(str(out / "head.safetensors"))["class_embeddings"].shape == (2, model.embed_dim)


@pytest.mark.parametrize("fixture", [pytest.param("tiny_dual_dir", marks=pytest.mark.slow), "tiny_vit_text_dir"])
def test_onnx_export_of_other_model_kinds_passes_its_self_check(fixture, request, tmp_path):
    result = export_model(str(request.getfixturevalue(fixture)), "onnx", tmp_path / "onnx")

    assert result.parity["image_cosine"] >= 0.9999 and result.parity["text_cosine"] >= 0.9999
    assert {"image_encoder.onnx", "text_encoder.onnx", "head.json"} <= set(result.files)


_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def standalone_preprocess(path, p) -> np.ndarray:
    """head.json's preprocessing with PIL and numpy only, as another program would write it."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    short, crop = p["resize_shorter_side_to"], p["center_crop"]
    if p["longer_side"] == "floor":
        size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    else:
        scale = short / min(w, h)
        size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
    if size != (w, h):
        image = image.resize(size, _RESAMPLE[p["resample"]])
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    x = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32) * np.float32(p["rescale"])
    x = (x - np.array(p["mean"], np.float32)) / np.array(p["std"], np.float32)
    return x.transpose(2, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["full", "probe"])
def test_onnxruntime_alone_classifies_a_runs_images_as_clipstudio_does(trained, tmp_path, run):
    import onnxruntime as ort

    out = tmp_path / f"{run}_onnx"
    export_model(str(trained[run]), "onnx", out)

    head = json.loads((out / "head.json").read_text())
    tensors = load_file(str(out / "head.safetensors"))
    paths = sorted(trained["data"].rglob("*.png"))
    session = ort.InferenceSession(str(out / head["image_encoder"]), providers=["CPUExecutionProvider"])
    pixels = np.stack([standalone_preprocess(p, head["preprocessing"]) for p in paths])
    embeddings = session.run(None, {"pixel_values": pixels})[0]
    scores = head["logit_scale"] * embeddings @ tensors["class_embeddings"].T + tensors["class_bias"]

    model = fp32(load_run_model(trained[run], device="cpu"))
    names = read_run_info(trained[run])["class_names"]
    want = class_weights(model, names, run_prompt_set(trained[run])).logits(torch_image_embeddings(model, paths))
    assert head["class_names"] == names
    assert head["class_embeddings_from"] == ("linear_probe" if run == "probe" else "prompts")
    np.testing.assert_allclose(scores, want, atol=1e-4)
    assert scores.argmax(1).tolist() == want.argmax(1).tolist()


@pytest.mark.slow
def test_an_onnx_export_that_disagrees_with_pytorch_leaves_nothing(tiny_clip_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "MIN_COSINE", 1.01)  # no real export can pass this
    out = tmp_path / "bad"

    with pytest.raises(ModelError, match="disagrees with the PyTorch model"):
        export_model(str(tiny_clip_dir), "onnx", out)

    assert not out.exists() and no_leftovers(out)


def test_onnx_export_without_onnxruntime_says_how_to_install_it(tiny_clip_dir, tmp_path, monkeypatch):
    real = onnx_export.importlib.util.find_spec
    monkeypatch.setattr(onnx_export.importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))

    with pytest.raises(ConfigError, match=re.escape("pip install clipstudio[export]")):
        export_model(str(tiny_clip_dir), "onnx", tmp_path / "x")


# --- the output folder -----------------------------------------------------------------------------


def test_a_non_empty_output_folder_is_refused_unless_overwrite(tiny_clip_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    with pytest.raises(ConfigError, match="--overwrite"):
        export_model(str(tiny_clip_dir), "hf", out)
    assert (out / "notes.txt").read_text() == "mine"

    export_model(str(tiny_clip_dir), "hf", out, overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "config.json").is_file() and no_leftovers(out)


def test_an_unknown_format_or_a_file_as_output_is_refused(tiny_clip_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        export_model(str(tiny_clip_dir), "tflite", tmp_path / "x")
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        export_model(str(tiny_clip_dir), "hf", tmp_path / "f")
