"""open_clip-format checkpoints without open_clip: parity with open_clip's own embeddings, safety, errors, Hub cache.

The assets in tests/assets/open_clip/ were made by open_clip itself (clipstudio/tools/make_open_clip_assets.py,
run in a separate reference venv); these tests only use the project's own code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudio.engine.config import TrainConfig
from clipstudio.engine.errors import ModelError
from clipstudio.engine.export.hf import export_hf
from clipstudio.engine.models import load_model, load_run_model
from clipstudio.engine.models.hf_clip import HFClipModel
from clipstudio.engine.models.linear_probe_head import LinearProbeModel
from clipstudio.engine.models.open_clip_config import CONFIG_NAME, parse_open_clip_config
from clipstudio.engine.models.vit_hf_text import ViTHFTextModel
from clipstudio.engine.storage.paths import cache_dir
from clipstudio.engine.training.trainer import Trainer
from tests.fixtures_models import hf_cache_snapshot, write_clip_vocab
from tests.fixtures_runs import quick_train_config

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "open_clip"
REFERENCE = ASSETS / "reference"
BIOMEDCLIP_REPO = "clipstudio-test/tiny-biomedclip"
BERT_REPO = (
    "clipstudio-test/tiny-biomedbert"  # named by the BiomedCLIP asset's config, as BiomedCLIP names its BERT
)
CLIP_REPO = "clipstudio-test/tiny-clip-quickgelu"
TOLERANCE = 1e-4  # max abs difference of L2-normalised embeddings


def _reference_images() -> list[Image.Image]:
    names = json.loads((REFERENCE / "images.json").read_text(encoding="utf-8"))
    return [Image.open(REFERENCE / "images" / name) for name in names]


TEXTS = json.loads((REFERENCE / "texts.json").read_text(encoding="utf-8"))


def _max_abs_error(model, name: str) -> tuple[float, float]:
    """Max abs difference of the app's embeddings (own preprocessing and tokenizer, fp32) from open_clip's."""
    model.bf16_inference = False  # parity is measured in fp32, as open_clip computed it
    images = model.encode_images(model.preprocess(_reference_images())).numpy()
    texts = model.encode_texts(TEXTS).numpy()
    return (
        float(np.abs(images - np.load(REFERENCE / f"{name}_image.npy")).max()),
        float(np.abs(texts - np.load(REFERENCE / f"{name}_text.npy")).max()),
    )


def _add_repo(cache: Path, repo_id: str, files: list[Path]) -> Path:
    """``files`` copied into ``repo_id``'s snapshot in the Hugging Face cache ``cache``."""
    snapshot = hf_cache_snapshot(cache, repo_id)
    for path in files:
        shutil.copyfile(path, snapshot / path.name)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An offline Hugging Face cache holding the tiny BiomedCLIP (+ its BERT repo) and the tiny CLIP."""
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _add_repo(cache, BIOMEDCLIP_REPO, sorted((ASSETS / "biomedclip_tiny").iterdir()))
    _add_repo(cache, BERT_REPO, sorted((ASSETS / "biomedbert_tiny").iterdir()))
    _add_repo(cache, CLIP_REPO, sorted((ASSETS / "clip_quickgelu_tiny").iterdir()))
    vocab = tmp_path / "openai_tokenizer"
    write_clip_vocab(vocab)  # open_clip's BPE, where the app looks for it: OpenAI CLIP's repo
    _add_repo(cache, "openai/clip-vit-base-patch32", sorted(vocab.iterdir()))
    return cache


@pytest.fixture
def biomedclip_dir(tmp_path, hf_cache) -> Path:
    """The tiny BiomedCLIP as a plain folder (its text tower still resolved through the HF cache)."""
    return Path(shutil.copytree(ASSETS / "biomedclip_tiny", tmp_path / "biomedclip"))


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    """The tiny QuickGELU CLIP as a folder with its BPE tokenizer files beside the weights."""
    folder = Path(shutil.copytree(ASSETS / "clip_quickgelu_tiny", tmp_path / "clip"))
    write_clip_vocab(folder)
    return folder


# --- parity with open_clip -----------------------------------------------------------------------


def test_biomedclip_shaped_hub_model_matches_open_clip_offline(hf_cache):
    model = load_model(BIOMEDCLIP_REPO, device="cpu")

    assert isinstance(model, ViTHFTextModel)
    image_error, text_error = _max_abs_error(model, "biomedclip_tiny")
    assert image_error < TOLERANCE and text_error < TOLERANCE
    # context_length 16 from the config: the long reference text was truncated as open_clip does
    assert model.max_text_tokens == 16 and model.count_tokens(TEXTS[-1:])[0] > 16


def test_quickgelu_clip_folder_matches_open_clip_as_a_transformers_clip(clip_dir):
    model = load_model(str(clip_dir), device="cpu")

    assert isinstance(model, HFClipModel)
    assert model.model.config.vision_config.hidden_act == "quick_gelu"
    assert model.model.config.text_config.hidden_act == "quick_gelu"
    image_error, text_error = _max_abs_error(model, "clip_quickgelu_tiny")
    assert image_error < TOLERANCE and text_error < TOLERANCE


def test_gelu_config_gives_open_clips_gelu_embeddings_not_the_quickgelu_ones(clip_dir):
    shutil.copyfile(REFERENCE / "clip_gelu_config.json", clip_dir / CONFIG_NAME)

    model = load_model(str(clip_dir), device="cpu")

    assert model.model.config.vision_config.hidden_act == "gelu"
    assert max(_max_abs_error(model, "clip_gelu_tiny")) < TOLERANCE
    # The activation is invisible in the weights: the wrong one would be a silent, measurable error.
    assert max(_max_abs_error(model, "clip_quickgelu_tiny")) > 10 * TOLERANCE


def test_standard_clip_hub_model_without_tokenizer_files_uses_openai_bpe_offline(hf_cache):
    model = load_model(CLIP_REPO, device="cpu")

    assert isinstance(model, HFClipModel)
    assert max(_max_abs_error(model, "clip_quickgelu_tiny")) < TOLERANCE


def test_biomedclip_shaped_model_centre_crops_as_torchvision_does(hf_cache):
    model = load_model(BIOMEDCLIP_REPO, device="cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (32, 35, 3), dtype=np.uint8)  # 35 wide, input 32

    ours = model.preprocess([Image.fromarray(pixels)])

    # open_clip's CenterCrop (torchvision): left = int(round((35 - 32) / 2.0)) = 2; floor would give 1
    assert torch.equal(ours, model.preprocessing.normalise(pixels[None, :, 2:34]))


def test_standard_clip_crops_an_odd_margin_as_open_clip_does_also_after_saving(clip_dir, tmp_path):
    names = json.loads((REFERENCE / "images.json").read_text(encoding="utf-8"))
    odd = names.index("6_bloodmnist_odd_crop.png")  # 27 x 22 -> 39 x 32: torchvision starts the crop at 4, not 3
    image = Image.open(REFERENCE / "images" / names[odd])
    expected = np.load(REFERENCE / "clip_quickgelu_tiny_image.npy")[odd]
    model = load_model(str(clip_dir), device="cpu")
    reloaded = load_model(str(model.save(tmp_path / "saved")), device="cpu")  # as a run's checkpoint reloads

    for loaded in (model, reloaded):
        loaded.bf16_inference = False
        embedding = loaded.encode_images(loaded.preprocess([image])).numpy()[0]
        assert loaded.crop_offset == "round"
        assert np.abs(embedding - expected).max() < TOLERANCE
    # transformers' own processor floors the offset: one pixel column off, a visibly different embedding
    floored = model.encode_images(model.image_processor(images=[image], return_tensors="pt")["pixel_values"])
    assert np.abs(floored.numpy()[0] - expected).max() > 10 * TOLERANCE
    # exported for plain transformers, whose processor floors: the folder's README says how to crop instead
    export_hf(model, tmp_path / "exported")
    assert "CenterCrop" in (tmp_path / "exported" / "README.md").read_text(encoding="utf-8")


# --- the .bin is read safely and converted once ---------------------------------------------------


def test_bin_is_converted_once_to_safetensors_in_the_app_cache(biomedclip_dir, monkeypatch):
    first = load_model(str(biomedclip_dir), device="cpu")
    converted = list((cache_dir() / "open_clip").glob("*/model.safetensors"))
    assert len(converted) == 1

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the .bin was read again")

    monkeypatch.setattr(torch, "load", no_unpickling)
    second = load_model(str(biomedclip_dir), device="cpu")

    first.bf16_inference = second.bf16_inference = False
    assert torch.equal(first.encode_texts(TEXTS), second.encode_texts(TEXTS))
    assert first.fingerprint() == second.fingerprint()


class _RunsCode:
    """Pickles to a call that creates a file: a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_bin_the_restricted_unpickler_refuses_is_a_one_line_error_and_runs_nothing(
    biomedclip_dir, tmp_path
):
    marker = tmp_path / "pwned"
    torch.save(
        {"logit_scale": torch.tensor(1.0), "payload": _RunsCode(marker)},
        biomedclip_dir / "open_clip_pytorch_model.bin",
    )

    with pytest.raises(ModelError) as err:
        load_model(str(biomedclip_dir), device="cpu")

    message = str(err.value)
    assert "refuses to unpickle" in message and "\n" not in message
    assert not marker.exists()
    assert not list((cache_dir() / "open_clip").glob("*/*"))


# --- what is not supported -----------------------------------------------------------------------

_CLIP_CFG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
}


@pytest.mark.parametrize(
    ("model_cfg", "named"),
    [
        ({**_CLIP_CFG, "multimodal_cfg": {"width": 512}}, "CoCa"),
        (
            {
                "embed_dim": 512,
                "vision_cfg": {"timm_model_name": "convnext_base"},
                "text_cfg": {"hf_model_name": "x/y"},
            },
            "convnext_base",
        ),
        ({"embed_dim": 1024, "vision_cfg": {"layers": [3, 4, 6, 3], "width": 64}}, "ResNet"),
        (
            {**_CLIP_CFG, "vision_cfg": {**_CLIP_CFG["vision_cfg"], "attentional_pool": True}},
            "attentional pooler",
        ),
        ({**_CLIP_CFG, "init_logit_bias": -10}, "SigLIP"),
        ({**_CLIP_CFG, "text_cfg": {"pool_type": "last"}}, "pool_type"),
    ],
)
def test_unknown_architectures_are_one_line_errors_naming_what_is_supported(model_cfg, named):
    with pytest.raises(ModelError) as err:
        parse_open_clip_config({"model_cfg": model_cfg}, "x")

    message = str(err.value)
    assert named in message and "BiomedCLIP" in message and "ViT-B/32" in message
    assert "\n" not in message


def test_an_unsupported_folder_fails_before_its_weights_are_read(biomedclip_dir, monkeypatch):
    config = json.loads((biomedclip_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    config["model_cfg"]["multimodal_cfg"] = {"width": 512}
    (biomedclip_dir / CONFIG_NAME).write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("weights read"))

    with pytest.raises(ModelError, match="CoCa"):
        load_model(str(biomedclip_dir), device="cpu")


def test_old_and_new_option_spellings_mean_the_same():
    old = json.loads((ASSETS / "biomedclip_tiny" / CONFIG_NAME).read_text(encoding="utf-8"))
    text = old["model_cfg"]["text_cfg"]
    assert {"proj", "pooler_type"} <= set(text)  # as BiomedCLIP's Hub config spells them
    new = json.loads(json.dumps(old))
    new_text = new["model_cfg"]["text_cfg"]
    new_text["hf_proj_type"], new_text["hf_pooler_type"] = new_text.pop("proj"), new_text.pop("pooler_type")

    a, b = parse_open_clip_config(old, "old"), parse_open_clip_config(new, "new")

    assert (a.text_projection, a.text_pooling) == (b.text_projection, b.text_pooling) == ("mlp", "cls")
    assert a.preprocessing == b.preprocessing and a.preprocessing.resample == "bicubic"
    assert a.preprocessing.image_size == 32 and a.context_length == 16


def test_timm_tower_with_parts_a_transformers_vit_lacks_is_refused(biomedclip_dir):
    state = torch.load(biomedclip_dir / "open_clip_pytorch_model.bin", weights_only=True)
    state["visual.trunk.norm_pre.weight"] = torch.ones(32)  # CLIP-style timm ViTs have a pre-norm
    torch.save(state, biomedclip_dir / "open_clip_pytorch_model.bin")

    with pytest.raises(ModelError, match="norm_pre"):
        load_model(str(biomedclip_dir), device="cpu")


def test_offline_without_the_text_repo_names_what_is_missing(hf_cache):
    shutil.rmtree(hf_cache / f"models--{BERT_REPO.replace('/', '--')}")

    with pytest.raises(ModelError) as err:
        load_model(BIOMEDCLIP_REPO, device="cpu")

    assert BERT_REPO in str(err.value) and "offline" in str(err.value)


# --- training and runs ---------------------------------------------------------------------------


def _train_cfg(tmp_path: Path, data: Path, model: Path, method: str) -> TrainConfig:
    return quick_train_config(data, model, tmp_path / f"run_{method}", method=method, epochs=1)


@pytest.mark.parametrize("method", ["lora", "linear_probe"])
def test_biomedclip_shaped_model_trains_and_its_run_reloads(
    method, biomedclip_dir, tmp_path, make_class_folders
):
    data = make_class_folders(tmp_path / "classes", {"red": 6, "green": 6, "blue": 6})

    trainer = Trainer(_train_cfg(tmp_path, data, biomedclip_dir, method))
    result = trainer.fit()

    assert result.status == "completed"
    reloaded = load_run_model(result.run_dir, "latest", device="cpu")
    reloaded.bf16_inference = False
    trained = trainer.method.model
    trained.bf16_inference = False
    if method == "lora":
        assert isinstance(reloaded, ViTHFTextModel)
        start = load_model(str(biomedclip_dir), device="cpu")
        start.bf16_inference = False
        # merged adapters: the saved model embeds as the adapted one did, and differs from the start
        texts = ["a photo of red.", "a photo of blue."]
        assert torch.allclose(reloaded.encode_texts(texts), trained.encode_texts(texts), atol=1e-5)
        assert not torch.allclose(reloaded.encode_texts(texts), start.encode_texts(texts), atol=1e-5)
        assert any(name.startswith("image_tower.") for name in trainer.method.adapters.target_names)
        # the ViT's whole attention block is adapted (its output projection too), its MLP is not
        before, after = start.torch_module.state_dict(), reloaded.torch_module.state_dict()
        out_proj = [k for k in before if k.startswith("image_tower.") and k.endswith("attention.o_proj.weight")]
        mlp = [k for k in before if k.startswith("image_tower.") and ".mlp." in k]
        assert out_proj and all(not torch.equal(before[k], after[k]) for k in out_proj)
        assert mlp and all(torch.equal(before[k], after[k]) for k in mlp)
    else:
        assert isinstance(reloaded, LinearProbeModel) and isinstance(reloaded.base, ViTHFTextModel)
        reloaded.base.bf16_inference = False
        # the frozen base model saved in the run reloads with the same embeddings
        pixels = reloaded.preprocess(_reference_images())
        assert torch.allclose(reloaded.encode_images(pixels), trained.encode_images(pixels), atol=1e-6)
        assert reloaded.class_weights(["red", "green", "blue"]).rows.shape == (3, trained.embed_dim)


def _scores(model, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Zero-shot scores (image-text cosine similarities): what the user sees change after training."""
    return model.encode_images(pixels) @ model.encode_texts(texts).T


@pytest.mark.parametrize("method", ["full", "lock_image"])
def test_biomedclip_shaped_model_fine_tunes_and_its_run_reloads_with_changed_scores(
    method, biomedclip_dir, tmp_path, make_class_folders
):
    data = make_class_folders(tmp_path / "classes", {"red": 6, "green": 6, "blue": 6})

    trainer = Trainer(_train_cfg(tmp_path, data, biomedclip_dir, method))
    result = trainer.fit()

    assert result.status == "completed"
    assert (result.run_dir / "checkpoint_latest" / "model.safetensors").is_file()
    reloaded = load_run_model(result.run_dir, "latest", device="cpu")
    assert isinstance(reloaded, ViTHFTextModel)
    start = load_model(str(biomedclip_dir), device="cpu")
    trained = trainer.method.model
    for model in (reloaded, start, trained):
        model.bf16_inference = False
    pixels = start.preprocess(_reference_images())
    texts = TEXTS  # words of the tiny BERT's vocabulary (colour names are not in it)
    # the saved run embeds as the trained model did
    assert torch.allclose(reloaded.encode_images(pixels), trained.encode_images(pixels), atol=1e-5)
    assert torch.allclose(reloaded.encode_texts(texts), trained.encode_texts(texts), atol=1e-5)
    assert not torch.allclose(_scores(reloaded, pixels, texts), _scores(start, pixels, texts), atol=1e-4)
    assert not torch.allclose(reloaded.encode_texts(texts), start.encode_texts(texts), atol=1e-5)
    image_moved = not torch.allclose(reloaded.encode_images(pixels), start.encode_images(pixels), atol=1e-6)
    assert image_moved == (method == "full")  # lock_image keeps the whole image tower as it was
