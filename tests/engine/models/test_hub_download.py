"""download_model: byte progress from huggingface_hub's tqdm bars, and a stop that leaves the cache consistent.

No network here: ``snapshot_download`` is replaced by a fake that drives the ``tqdm_class`` it is given
as huggingface_hub 2.x does (a network-bytes bar, a written-bytes bar whose total grows file by file,
a file-count bar over a thread pool) and writes each file as a ``.incomplete`` blob renamed when done.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.utils.tqdm import _create_progress_bar, hf_thread_map

from clipstudio.engine.errors import ModelError
from clipstudio.engine.events import DOWNLOAD_STAGE, ProgressUpdated
from clipstudio.engine.models import hub
from tests.fixtures_models import hf_cache_snapshot

CHUNK = 1000
REPO = "someone/medical-clip"
FILES = {"open_clip_config.json": 300, "open_clip_pytorch_model.bin": 25 * CHUNK, "README.md": 50}
TEXT_REPO = "someone/medical-bert"  # a BiomedCLIP-style text tower's repo: its config and vocabulary are needed
BIOMEDCLIP_CONFIG = json.dumps({"model_cfg": {"text_cfg": {"hf_model_name": TEXT_REPO}}}).encode()
TEXT_FILES = {"config.json": 500, "vocab.txt": 4 * CHUNK, "pytorch_model.bin": 40 * CHUNK}


class FakeHub:
    """Hub repos (``REPO``: ``FILES``, sizes or contents) and a snapshot_download that writes them chunk by
    chunk into ``cache``."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.repos: dict[str, dict[str, int | bytes]] = {REPO: FILES}
        self.calls: list[dict] = []
        self.chunks_written = 0

    def model_info(self, repo_id, timeout=None):
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=name) for name in self.repos[repo_id]])

    def snapshot_download(self, repo_id, *, allow_patterns, etag_timeout, tqdm_class):
        self.calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns})
        files = {
            name: value if isinstance(value, bytes) else b"x" * value for name, value in self.repos[repo_id].items()
        }
        wanted = [n for n in files if any(Path(n).match(p) for p in allow_patterns)]
        root = self.cache / f"models--{repo_id.replace('/', '--')}"
        blobs, snapshot = root / "blobs", root / "snapshots" / "abc"
        blobs.mkdir(parents=True, exist_ok=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        bar = dict(cls=tqdm_class, log_level=logging.WARNING, total=0, initial=0, unit="B", unit_scale=True)
        _create_progress_bar(name="transfer", desc="Downloading bytes", **bar)
        written = _create_progress_bar(name="snapshot", desc="Reconstructing (incomplete total...)", **bar)

        def download(name: str) -> None:
            content = files[name]
            written.total += len(content)
            partial = blobs / f"{name}.incomplete"
            with partial.open("ab") as out:
                for start in range(0, len(content), CHUNK):
                    chunk = content[start : start + CHUNK]
                    out.write(chunk)
                    self.chunks_written += 1
                    written.update(len(chunk))
            partial.rename(snapshot / name)

        hf_thread_map(download, wanted, desc=f"Fetching {len(wanted)} files", max_workers=1, tqdm_class=tqdm_class)
        return str(snapshot)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "model_info", fake.model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


def test_download_reports_bytes_written_until_every_file_is_there(fake_hub):
    events: list[ProgressUpdated] = []

    folder = hub.download_model(REPO, events.append, lambda: False)

    assert folder is not None and (folder / "open_clip_pytorch_model.bin").stat().st_size == 25 * CHUNK
    assert not (folder / "README.md").exists()  # only what loading needs
    assert events and all(e.stage == DOWNLOAD_STAGE for e in events)
    done = [e.done for e in events]
    assert done == sorted(done) and all(e.done <= e.total for e in events)
    assert events[-1].done == events[-1].total == FILES["open_clip_config.json"] + 25 * CHUNK
    # the open_clip weights file is asked for by name, next to the usual configs and tokenizer files
    assert "open_clip_pytorch_model.bin" in fake_hub.calls[0]["allow_patterns"]


def test_stopping_ends_the_download_at_the_next_chunk_and_leaves_only_an_incomplete_blob(fake_hub):
    def stop() -> bool:  # the user presses Cancel once 5 chunks are in
        return fake_hub.chunks_written >= 5

    folder = hub.download_model(REPO, lambda _e: None, stop)

    assert folder is None  # stopped is not an error
    assert fake_hub.chunks_written == 5  # no chunk after the stop
    root = fake_hub.cache / f"models--{REPO.replace('/', '--')}"
    assert not (root / "snapshots" / "abc" / "open_clip_pytorch_model.bin").exists()
    assert (root / "blobs" / "open_clip_pytorch_model.bin.incomplete").is_file()  # the next download resumes it


def test_a_repo_with_a_transformers_clip_too_downloads_only_that(fake_hub, monkeypatch):
    monkeypatch.setitem(FILES, "config.json", 100)
    monkeypatch.setitem(FILES, "model.safetensors", 3 * CHUNK)

    folder = hub.download_model(REPO, lambda _e: None, lambda: False)

    assert folder is not None and (folder / "model.safetensors").is_file()
    assert not (folder / "open_clip_pytorch_model.bin").exists()  # the loader would not use it


def test_offline_download_is_the_usual_one_line_error(monkeypatch):
    monkeypatch.setattr(hub, "hub_offline", lambda: True)

    with pytest.raises(ModelError, match="offline"):
        hub.download_model(REPO, lambda _e: None, lambda: False)


@pytest.fixture
def biomedclip_hub(fake_hub, monkeypatch) -> FakeHub:
    """The fake Hub with ``REPO`` shaped as BiomedCLIP: its config names ``TEXT_REPO`` for the text tower."""
    monkeypatch.setitem(FILES, "open_clip_config.json", BIOMEDCLIP_CONFIG)
    fake_hub.repos[TEXT_REPO] = TEXT_FILES
    return fake_hub


def test_the_text_encoders_files_download_with_the_same_progress(biomedclip_hub):
    events: list[ProgressUpdated] = []

    folder = hub.download_model(REPO, events.append, lambda: False)

    assert folder is not None
    assert [c["repo_id"] for c in biomedclip_hub.calls] == [REPO, TEXT_REPO]
    text_snapshot = biomedclip_hub.cache / f"models--{TEXT_REPO.replace('/', '--')}" / "snapshots" / "abc"
    assert (text_snapshot / "config.json").is_file() and (text_snapshot / "vocab.txt").is_file()
    assert not (text_snapshot / "pytorch_model.bin").exists()  # the checkpoint holds the text tower's weights
    done = [e.done for e in events]
    assert done == sorted(done)  # one bar: the text encoder's bytes count on from the model's
    expected = len(BIOMEDCLIP_CONFIG) + 25 * CHUNK + TEXT_FILES["config.json"] + TEXT_FILES["vocab.txt"]
    assert events[-1].done == events[-1].total == expected


def test_cancel_during_the_text_encoders_files_stops_the_download(biomedclip_hub):
    model_chunks = 1 + 25  # the config and the weights of REPO

    def stop() -> bool:  # the user presses Cancel while the text encoder's vocabulary comes in
        return biomedclip_hub.chunks_written >= model_chunks + 2

    assert hub.download_model(REPO, lambda _e: None, stop) is None
    text_root = biomedclip_hub.cache / f"models--{TEXT_REPO.replace('/', '--')}"
    assert not (text_root / "snapshots" / "abc" / "vocab.txt").exists()
    assert (text_root / "blobs" / "vocab.txt.incomplete").is_file()


def test_offline_the_download_names_the_files_the_cache_lacks(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "hub_offline", lambda: True)
    snapshot = hf_cache_snapshot(cache, REPO)  # the model itself was downloaded, its text encoder not
    (snapshot / "open_clip_config.json").write_bytes(BIOMEDCLIP_CONFIG)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"")

    with pytest.raises(ModelError) as error:
        hub.download_model(REPO, lambda _e: None, lambda: False)

    assert "offline" in str(error.value)
    assert f"its text encoder's files ({TEXT_REPO}: config.json, vocab.txt)" in str(error.value)
