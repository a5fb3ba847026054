"""Hugging Face Hub ids: use the local HF cache when it has the model, else one quick download attempt."""

from __future__ import annotations

import os
import re
from pathlib import Path

from clipstudio.engine.errors import ModelError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Only what an HF CLIP folder needs: configs, tokenizer files, safetensors weights (never .bin/.h5/.msgpack).
ALLOW_PATTERNS = ["*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors"]
PROBE_TIMEOUT_S = 5.0
ETAG_TIMEOUT_S = 10.0
FALLBACK_ADVICE = "use `--model builtin` (works offline) or a local model folder"


def looks_like_hub_id(spec: str) -> bool:
    return bool(HUB_ID.match(spec)) and ".." not in spec


def hub_offline() -> bool:
    from huggingface_hub import is_offline_mode

    flags = (os.environ.get(name, "").strip().upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return is_offline_mode() or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)


def fetch_model_folder(repo_id: str) -> Path:
    """Local snapshot folder for ``repo_id``: the cached copy, else a download into the normal HF cache.

    Fails fast with one ModelError sentence when offline, unreachable, unknown or pickle-only.
    """
    cached = _cached_snapshot(repo_id, ALLOW_PATTERNS)
    if cached is not None:
        return cached
    if hub_offline():
        raise _offline_error(repo_id)
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = model_info(repo_id, timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise ModelError(
            f"Model {repo_id!r} is gated on the Hugging Face Hub (log in with `hf auth login` after accepting "
            f"its terms); or {FALLBACK_ADVICE}."
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"Model {repo_id!r} was not found on the Hugging Face Hub; {FALLBACK_ADVICE}."
        ) from None
    except Exception as exc:  # any network failure gets the same advice
        raise ModelError(
            f"Model {repo_id!r} is not in the local Hugging Face cache and the Hub can't be reached "
            f"({type(exc).__name__}); {FALLBACK_ADVICE}."
        ) from None
    files = {s.rfilename for s in (info.siblings or [])}
    if not any(name.endswith(".safetensors") for name in files):
        raise ModelError(
            f"Model {repo_id!r} publishes no safetensors weights and CLIP Studio never unpickles .bin files; "
            f"{FALLBACK_ADVICE}."
        )
    return _download_snapshot(repo_id, ALLOW_PATTERNS)


def cached_hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of a Hub repo if the local HF cache has it; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None


def list_hub_files(repo_id: str) -> set[str] | None:
    """The file names of a Hub repo (one quick request); None offline or on any Hub failure."""
    if hub_offline():
        return None
    from huggingface_hub import model_info

    try:
        return {s.rfilename for s in (model_info(repo_id, timeout=PROBE_TIMEOUT_S).siblings or [])}
    except Exception:  # any Hub failure: the caller's plain path reports it with its usual advice
        return None


def hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of a Hub repo from the HF cache, else downloaded; None if the repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except (OSError, ValueError):
        pass  # not cached
    if hub_offline():
        return None
    try:
        return Path(hf_hub_download(repo_id, filename, etag_timeout=ETAG_TIMEOUT_S))
    except EntryNotFoundError:
        return None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ModelError(
            f"Model {repo_id!r} was not found (or is gated) on the Hugging Face Hub; {FALLBACK_ADVICE}."
        ) from None
    except Exception as exc:  # any network failure gets the same advice
        raise ModelError(
            f"Downloading {filename} of {repo_id!r} failed ({type(exc).__name__}); {FALLBACK_ADVICE}."
        ) from None


def hub_snapshot(repo_id: str, patterns: list[str]) -> Path:
    """A local snapshot of a Hub repo's ``patterns`` files: the cached one, else downloaded."""
    cached = _cached_snapshot(repo_id, patterns)
    if cached is not None:
        return cached
    if hub_offline():
        raise _offline_error(repo_id)
    return _download_snapshot(repo_id, patterns)


def _cached_snapshot(repo_id: str, patterns: list[str]) -> Path | None:
    """The cached snapshot of ``patterns``, or None when not cached (or cached incompletely)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (OSError, ValueError):
        return None


def _offline_error(repo_id: str) -> ModelError:
    return ModelError(
        f"Model {repo_id!r} is not in the local Hugging Face cache and offline mode is on; {FALLBACK_ADVICE}."
    )


def _download_snapshot(repo_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, etag_timeout=ETAG_TIMEOUT_S))
    except Exception as exc:  # any network failure gets the same advice
        raise ModelError(
            f"Downloading {repo_id!r} failed ({type(exc).__name__}: {exc}); {FALLBACK_ADVICE}."
        ) from None
