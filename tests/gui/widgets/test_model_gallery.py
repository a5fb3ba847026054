"""The medical model gallery: what each row says about the local copy, online and offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipstudio.engine.model_catalogue import KNOWN_MODELS
from clipstudio.gui.widgets.model_gallery import CACHED, OFFLINE_NOT_CACHED, ModelGallery, check_cache
from tests.fixtures_models import hf_cache_snapshot

BIOMEDCLIP = next(m for m in KNOWN_MODELS if m.name == "BiomedCLIP")
PLIP = next(m for m in KNOWN_MODELS if m.name == "PLIP")
TEXT_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_files(cache: Path, repo_id: str, files: dict[str, str]) -> None:
    """Files of a repo in the Hugging Face cache ``cache``."""
    snapshot = hf_cache_snapshot(cache, repo_id)
    for name, text in files.items():
        (snapshot / name).write_text(text, encoding="utf-8")


def _statuses(qtbot) -> dict[str, str]:
    gallery = ModelGallery()
    qtbot.addWidget(gallery)
    gallery.set_cached(check_cache())
    return {model.name: gallery.status(row) for row, model in enumerate(gallery.models)}


def test_offline_rows_say_what_is_missing(qtbot, hf_cache):
    config = {"model_cfg": {"text_cfg": {"hf_model_name": TEXT_REPO}}}
    _cache_files(hf_cache, BIOMEDCLIP.repo_id, {"open_clip_config.json": json.dumps(config), "open_clip_pytorch_model.bin": ""})
    _cache_files(hf_cache, PLIP.repo_id, {"config.json": "{}"})  # e.g. a download stopped before the weights

    statuses = _statuses(qtbot)

    assert statuses["BiomedCLIP"] == f"offline: missing its text encoder's files ({TEXT_REPO}: config.json, vocab.txt)"
    assert statuses["PLIP"] == "offline: missing its weights"
    assert statuses["PubMedCLIP"] == OFFLINE_NOT_CACHED


def test_a_long_missing_line_keeps_its_repo_and_files_in_the_tooltip(qtbot):
    gallery = ModelGallery()
    qtbot.addWidget(gallery)
    row = gallery.models.index(BIOMEDCLIP)
    whole = f"offline: missing its weights and its text encoder's files ({TEXT_REPO}: config.json, vocab.txt)"
    gallery.set_cached({BIOMEDCLIP.repo_id: whole})

    cell = gallery.item(row, 0)
    assert cell.text().splitlines() == ["BiomedCLIP", BIOMEDCLIP.architecture,
                                        "offline: missing its weights and its text encoder's files"]
    assert whole in cell.toolTip() and BIOMEDCLIP.repo_id in cell.toolTip()
    assert gallery.status(row) == whole


def test_a_model_with_every_part_cached_works_offline(qtbot, hf_cache):
    config = {"model_cfg": {"text_cfg": {"hf_model_name": TEXT_REPO}}}
    _cache_files(hf_cache, BIOMEDCLIP.repo_id, {"open_clip_config.json": json.dumps(config), "open_clip_pytorch_model.bin": ""})
    _cache_files(hf_cache, TEXT_REPO, {"config.json": "{}", "vocab.txt": "[PAD]"})
    _cache_files(hf_cache, PLIP.repo_id, {"config.json": "{}", "model.safetensors": ""})

    statuses = _statuses(qtbot)

    assert statuses["BiomedCLIP"] == statuses["PLIP"] == CACHED


def test_offline_a_standard_clip_without_a_tokenizer_names_the_files_it_lacks(qtbot, hf_cache):
    quiltnet = next(m for m in KNOWN_MODELS if m.name == "QuiltNet-B-32")
    config = {"model_cfg": {"text_cfg": {"context_length": 77}}}  # open_clip's own text tower: OpenAI's BPE
    _cache_files(hf_cache, quiltnet.repo_id, {"open_clip_config.json": json.dumps(config), "open_clip_pytorch_model.bin": ""})

    statuses = _statuses(qtbot)

    expected = "offline: missing its tokenizer files (openai/clip-vit-base-patch32: vocab.json, merges.txt)"
    assert statuses["QuiltNet-B-32"] == expected


def test_online_a_partial_copy_is_completed_on_load(qtbot, hf_cache, monkeypatch):
    from clipstudio.engine.models import hub

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    _cache_files(hf_cache, PLIP.repo_id, {"config.json": "{}"})

    statuses = _statuses(qtbot)

    assert statuses["PLIP"] == "missing its weights: fetched on load"
    assert statuses["PubMedCLIP"] == "downloads on first load"
