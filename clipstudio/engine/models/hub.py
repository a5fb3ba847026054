"""Hugging Face Hub ids: use the local HF cache when it has the model, else one quick download attempt.

``download_model`` fetches a model's files with byte progress (``ProgressUpdated`` events) and stops
between chunks when asked, for the app's download bar and its Cancel button: an open_clip model's
files from other repos too (BiomedCLIP's text encoder config and vocabulary, OpenAI CLIP's tokenizer).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clipstudio.engine.errors import ModelError
from clipstudio.engine.events import DOWNLOAD_STAGE, ProgressUpdated
from clipstudio.engine.model_catalogue import NOTHING_CACHED

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Only what an HF CLIP folder needs: configs, tokenizer files, safetensors weights (never .bin/.h5/.msgpack).
ALLOW_PATTERNS = ["*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors"]
PROBE_TIMEOUT_S = 5.0
ETAG_TIMEOUT_S = 10.0
FALLBACK_ADVICE = "use `--model builtin` (works offline) or a local model folder"
# An open_clip checkpoint's weights, in the order they are preferred (safetensors first: no unpickling).
OPEN_CLIP_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
)
# Files of a text tower's repo an open_clip model needs: its config and tokenizer (never its own weights).
TEXT_REPO_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
]
CLIP_TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
]
# open_clip's own CLIP tokenizer is OpenAI's BPE, which this repo publishes in transformers' format.
OPENAI_TOKENIZER_REPO = "openai/clip-vit-base-patch32"
_PROGRESS_EVERY_S = 0.2  # at most five progress events a second: the bar needs no more


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
    files = _hub_files(repo_id)
    if not any(name.endswith(".safetensors") for name in files):
        raise ModelError(
            f"Model {repo_id!r} publishes no safetensors weights and CLIP Studio never unpickles .bin files; "
            f"{FALLBACK_ADVICE}."
        )
    return _download_snapshot(repo_id, ALLOW_PATTERNS)


def _hub_files(repo_id: str) -> set[str]:
    """The file names of a Hub repo (one quick request); a ModelError sentence when it can't be had."""
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
    return {s.rfilename for s in (info.siblings or [])}


def cached_hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of a Hub repo if the local HF cache has it; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None


def _cached(repo_id: str, name: str) -> Path | None:
    try:
        return cached_hub_file(repo_id, name)
    except Exception:  # an odd id or cache layout: counts as not cached
        return None


def has_clip_tokenizer(folder: Path) -> bool:
    """Whether ``folder`` holds a CLIP BPE tokenizer (tokenizer.json, or vocab.json + merges.txt)."""
    pair = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return (folder / "tokenizer.json").is_file() or pair


def companion_repos(open_clip_config: Path) -> list[tuple[str, list[str]]]:
    """The other Hub repos an open_clip model loads files from, with the file names wanted from each.

    A Hugging Face text tower (BiomedCLIP): its repo's config and tokenizer (and the tokenizer's repo
    when the config names another). A standard CLIP whose own folder (the config's) holds no
    tokenizer: OpenAI CLIP's, which open_clip's tokenizer is.
    """
    try:
        text_cfg = json.loads(open_clip_config.read_text(encoding="utf-8"))["model_cfg"].get("text_cfg") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    if not isinstance(text_cfg, dict):
        return []
    text_repo = text_cfg.get("hf_model_name")
    if text_repo:
        repos = dict.fromkeys([text_repo, text_cfg.get("hf_tokenizer_name") or text_repo])
        return [(r, TEXT_REPO_FILES) for r in repos if isinstance(r, str) and looks_like_hub_id(r)]
    if has_clip_tokenizer(open_clip_config.parent):
        return []
    return [(OPENAI_TOKENIZER_REPO, CLIP_TOKENIZER_FILES)]


def _missing_companion_files(repo_id: str, names: list[str]) -> list[str]:
    """The files of a companion repo that loading needs and the cache lacks: its config, a tokenizer."""
    if names == CLIP_TOKENIZER_FILES:
        has_tokenizer = _cached(repo_id, "tokenizer.json") or (
            _cached(repo_id, "vocab.json") and _cached(repo_id, "merges.txt")
        )
        return [] if has_tokenizer else ["vocab.json", "merges.txt"]
    missing = [] if _cached(repo_id, "config.json") else ["config.json"]
    if not (_cached(repo_id, "vocab.txt") or _cached(repo_id, "tokenizer.json")):
        missing.append("vocab.txt")
    return missing


def missing_from_cache(repo_id: str) -> list[str]:
    """What of a CLIP or open_clip model the local HF cache lacks, in plain words ([] = it loads offline)."""
    open_clip_config = _cached(repo_id, "open_clip_config.json")
    if open_clip_config is None:
        if _cached(repo_id, "config.json") is None:
            return [NOTHING_CACHED]
        weights = ("model.safetensors", "model.safetensors.index.json")
        return [] if any(_cached(repo_id, n) for n in weights) else ["its weights"]
    missing = [] if any(_cached(repo_id, n) for n in OPEN_CLIP_WEIGHT_NAMES) else ["its weights"]
    for repo, names in companion_repos(open_clip_config):
        lacking = _missing_companion_files(repo, names)
        if lacking:
            what = "tokenizer" if names == CLIP_TOKENIZER_FILES else "text encoder's"
            missing.append(f"its {what} files ({repo}: {', '.join(lacking)})")
    return missing


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


class DownloadStopped(Exception):
    """Raised from a progress update to end ``snapshot_download``'s transfers when the user stops them."""


def download_model(
    repo_id: str,
    callback: Callable[[object], None],
    should_stop: Callable[[], bool],
) -> Path | None:
    """Download what loading ``repo_id`` needs into the HF cache, reporting bytes; None when stopped.

    The files: configs and tokenizer files, and the weights (a CLIP's safetensors, or the first
    open_clip weights file the repo has), then an open_clip model's files in other repos
    (``companion_repos``: e.g. BiomedCLIP's text encoder config and vocabulary). Progress comes as
    ``ProgressUpdated(DOWNLOAD_STAGE, bytes written, bytes expected)``, one count over all the repos.
    ``should_stop`` is checked at every chunk: finished files stay in the cache, an unfinished one
    stays as huggingface_hub's ``.incomplete`` blob that the next download resumes, and the snapshot
    only counts as cached once it is complete. Fails with a ModelError sentence when the Hub can't be
    reached, and offline with one naming what the cache lacks.
    """
    if hub_offline():
        missing = missing_from_cache(repo_id)
        if not missing:
            return _cached_snapshot(repo_id, ALLOW_PATTERNS)
        if missing == [NOTHING_CACHED]:
            raise _offline_error(repo_id)
        raise ModelError(
            f"Model {repo_id!r} can't be loaded: offline mode is on and the local Hugging Face cache lacks "
            f"{' and '.join(missing)}; connect once to download them, or {FALLBACK_ADVICE}."
        )
    files = _hub_files(repo_id)
    patterns = list(ALLOW_PATTERNS)
    # A repo with both: the transformers CLIP is what loads (as open_clip_format.is_open_clip_repo decides).
    open_clip_only = "model.safetensors" not in files
    weights = next((name for name in OPEN_CLIP_WEIGHT_NAMES if name in files and open_clip_only), None)
    if weights is not None:
        patterns.append(weights)
    elif not any(name.endswith(".safetensors") for name in files):
        raise ModelError(
            f"Model {repo_id!r} publishes no safetensors weights and CLIP Studio never unpickles .bin files; "
            f"{FALLBACK_ADVICE}."
        )
    latest = [ProgressUpdated(DOWNLOAD_STAGE, 0, 0)]

    def report(event: ProgressUpdated, offset: int = 0) -> None:
        """Bytes of the later repos count on from the earlier ones', so the bar never goes back."""
        latest[0] = ProgressUpdated(DOWNLOAD_STAGE, offset + event.done, offset + event.total)
        callback(latest[0])

    folder = _download_with_progress(repo_id, patterns, report, should_stop, repr(repo_id))
    if folder is None:
        return None
    config = folder / "open_clip_config.json"
    for repo, names in companion_repos(config) if weights is not None else []:
        offset = latest[0].done
        done = _download_with_progress(
            repo, names, lambda e, o=offset: report(e, o), should_stop, f"{repo!r} (used by {repo_id!r})"
        )
        if done is None:
            return None
    return folder


def _download_with_progress(
    repo_id: str,
    patterns: list[str],
    callback: Callable[[ProgressUpdated], None],
    should_stop: Callable[[], bool],
    what: str,
) -> Path | None:
    """``snapshot_download`` of ``patterns`` reporting written bytes; None when stopped."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id,
            allow_patterns=patterns,
            etag_timeout=ETAG_TIMEOUT_S,
            tqdm_class=_byte_progress_class(callback, should_stop),
        )
    except DownloadStopped:
        return None
    except Exception as exc:  # any network failure gets the same advice
        if should_stop():
            return None  # the stop surfaced as another error inside huggingface_hub's threads
        raise ModelError(f"Downloading {what} failed ({type(exc).__name__}: {exc}); {FALLBACK_ADVICE}.") from None
    return Path(folder)


def _byte_progress_class(callback: Callable[[object], None], should_stop: Callable[[], bool]) -> type:
    """A tqdm class for ``snapshot_download(tqdm_class=...)``: its byte bar becomes ProgressUpdated events.

    snapshot_download makes three bars from it: network bytes ("Downloading bytes"), bytes written to
    the cache (every file adds its size to ``total``) and a count of files. The written bytes are
    reported; every bar's update checks ``should_stop``.
    """
    from tqdm.auto import tqdm  # deferred with huggingface_hub, which brings it

    lock = threading.Lock()
    last_report = [0.0]

    class ByteProgress(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.pop("name", None)  # huggingface_hub's own tqdm takes a name; plain tqdm refuses it
            super().__init__(*args, **{**kwargs, "disable": True})  # drawn by the app, not on a terminal
            desc = str(kwargs.get("desc") or "")
            self.reports = kwargs.get("unit") == "B" and not desc.startswith("Downloading bytes")
            self.count = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> None:
            if should_stop():
                raise DownloadStopped
            with lock:
                self.count += int(n or 0)
                now = time.monotonic()
                due = now - last_report[0] >= _PROGRESS_EVERY_S or bool(self.total and self.count >= self.total)
                if self.reports and due:
                    last_report[0] = now
                    callback(ProgressUpdated(DOWNLOAD_STAGE, self.count, max(int(self.total or 0), self.count)))

    return ByteProgress
