"""Privacy: no network unless the user picks a Hub model, no telemetry, and no caption text or image contents in logs."""

from __future__ import annotations

import ast
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

import clipstudio
from clipstudio.cli.main import main
from clipstudio.engine.errors import ModelError
from tests.conftest import _NetworkBlocked

PACKAGE = Path(clipstudio.__file__).resolve().parent
REPO = PACKAGE.parent

# --- the test suite's own guard -------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9)),
            id="connect_localhost_9",
        ),
        pytest.param(
            lambda: socket.create_connection(("1.1.1.1", 443), timeout=1), id="create_connection_public_ip"
        ),
        pytest.param(
            lambda: socket.socket(socket.AF_INET6).connect(("2606:4700::1111", 443)), id="connect_ipv6"
        ),
        pytest.param(lambda: socket.getaddrinfo("huggingface.co", 443), id="dns_lookup"),
        pytest.param(lambda: urllib.request.urlopen("http://93.184.216.34/", timeout=1), id="urllib_http"),
    ],
)
def test_outbound_network_is_blocked_in_every_test(attempt):
    # Refused by the conftest fixture itself: not a timeout, not "connection refused" from a real stack.
    with pytest.raises(_NetworkBlocked):
        attempt()


def test_local_unix_sockets_still_work():
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no AF_UNIX sockets here")
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"ok")
        assert b.recv(2) == b"ok"


@pytest.fixture
def network_attempts(monkeypatch) -> list[str]:
    """Outbound connects and DNS lookups attempted during the test (each is refused)."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def refuse(what: str):
        attempts.append(what)
        raise OSError(f"network attempted in a test: {what}")

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse(f"connect {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: refuse(f"connect_ex {address!r}"))
    monkeypatch.setattr(
        socket, "create_connection", lambda address, *a, **k: refuse(f"create_connection {address!r}")
    )
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse(f"getaddrinfo {host!r}"))
    return attempts


# --- the app makes no network call unless the user picks a Hub model ------------------------------

_NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def refuse(what):
        attempts.append(what)
        raise OSError("network attempted: " + what)
    real_connect = socket.socket.connect
    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse("connect %r" % (address,))
        return real_connect(sock, address)
    socket.socket.connect = connect
    socket.socket.connect_ex = lambda sock, address: refuse("connect_ex %r" % (address,))
    socket.create_connection = lambda address, *a, **k: refuse("create_connection %r" % (address,))
    socket.getaddrinfo = lambda host, *a, **k: refuse("getaddrinfo %r" % (host,))

    from clipstudio.engine.models import load_model
    model = load_model("builtin", device="cpu")
    after_builtin = list(attempts)
    from clipstudio.cli.demo import run_demo
    ok = run_demo(device="cpu", out=sys.argv[1], print_fn=lambda *a, **k: None)
    print(json.dumps({"builtin": after_builtin, "demo_ok": ok, "all": attempts}))
    """
)


@pytest.mark.slow
def test_builtin_model_and_demo_make_no_network_call(tmp_path):
    # A fresh interpreter without the offline switches a test run sets: what a user's machine does.
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(CLIPSTUDIO_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK_SCRIPT, str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"builtin": [], "demo_ok": True, "all": []}


def test_a_local_model_folder_makes_no_network_call(network_attempts, tiny_clip_dir, tiny_dual_dir):
    from clipstudio.engine.models import load_model

    for folder in (tiny_clip_dir, tiny_dual_dir):
        load_model(str(folder), device="cpu")
    assert network_attempts == []


def test_hub_model_offline_fails_fast_without_a_network_call(network_attempts):
    from clipstudio.engine.models import load_model

    with pytest.raises(ModelError, match="offline mode is on"):
        load_model("someone/not-cached-clip", device="cpu")
    assert network_attempts == []


def test_picking_a_hub_model_is_what_reaches_the_network(network_attempts, monkeypatch):
    # The positive control for the tests above: the guard does see a real library's network call.
    import huggingface_hub.constants

    from clipstudio.engine.models import hub, load_model

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    with pytest.raises(ModelError, match="can't be reached|not found|Downloading"):
        load_model("someone/not-cached-clip", device="cpu")
    assert network_attempts, "picking a Hub model should have tried the network"


_NETWORK_MODULES = ("requests", "urllib", "urllib3", "httpx", "http", "aiohttp", "socket", "ftplib", "smtplib",
                    "websocket", "websockets", "grpc", "huggingface_hub", "sentry_sdk", "PySide6.QtNetwork",
                    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets")  # fmt: skip
# Where a network module may be imported, and why.
_ALLOWED = {
    ("clipstudio/engine/models/hub.py", "huggingface_hub"): "downloads the Hub model the user picked",
    ("clipstudio/selftest.py", "socket"): "installs a guard that refuses every connection",
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_telemetry_or_network_library_outside_the_hub_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for module in _imports(path):
            net = next((m for m in _NETWORK_MODULES if module == m or module.startswith(m + ".")), None)
            if net and (rel, net) not in _ALLOWED:
                offenders.append(f"{rel}: imports {module}")
    assert offenders == []


# --- logs never hold caption text or image contents -------------------------------------------------

CAPTION_MARKER = "QZXCAPTION7731"
PIXEL_MARKER = "QZXPIXELS5519"


def _marked_dataset(root: Path) -> Path:
    """Two colour classes of image-caption pairs; every caption and every PNG text chunk holds a marker."""
    rows = []
    for name, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(4):
            path = root / "images" / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            info = PngImagePlugin.PngInfo()
            info.add_text("Comment", f"patient note {PIXEL_MARKER}")
            Image.new("RGB", (8, 8), (colour[0] - 10 * i, colour[1], colour[2])).save(path, pnginfo=info)
            rows.append({"file_name": f"images/{path.name}", "label": name,
                         "text": f"a {name} lesion {CAPTION_MARKER} case {i}"})  # fmt: skip
    ann = root / "metadata.jsonl"
    ann.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ann


@pytest.fixture
def app_log_file(tmp_path):
    """The GUI's rotating log file, set up at DEBUG as the app does (into this test's CLIPSTUDIO_HOME)."""
    pytest.importorskip("PySide6")
    from clipstudio.gui.errors import setup_logging

    logger = logging.getLogger("clipstudio")
    level, handlers = logger.level, list(logger.handlers)
    path = setup_logging(logging.DEBUG)
    yield path
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.slow  # every command end to end, training included
def test_logs_hold_no_caption_text_or_image_contents(
    tmp_path, capsys, caplog, app_log_file, tiny_clip_dir, one_torch_thread
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="clipstudio")
    ann = _marked_dataset(tmp_path / "data")
    model = ["--model", str(tiny_clip_dir), "--device", "cpu"]
    assert CAPTION_MARKER in ann.read_text(encoding="utf-8")

    runs = [
        ["inspect", ann, "--model", tiny_clip_dir],
        ["zeroshot", ann, *model],
        ["retrieve", ann, *model],
        ["train", "--data", ann, *model, "--output", tmp_path / "run", "--epochs", "1", "--batch-size", "4",
         "--no-amp", "--num-workers", "1", "--val-fraction", "0.25"],
        ["eval", tmp_path / "run", "--data", ann, "--device", "cpu"],
    ]  # fmt: skip
    stderr = []
    for argv in runs:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        stderr.append(captured.err)

    logged = [record.getMessage() for record in caplog.records]
    assert logged, "nothing was logged at DEBUG: the check would prove nothing"
    log_text = "\n".join(logged) + app_log_file.read_text(encoding="utf-8") + "\n".join(stderr)
    assert CAPTION_MARKER not in log_text
    assert PIXEL_MARKER not in log_text


_CAPTION_NAMES = {"caption", "captions", "text", "texts", "all_captions", "prompt", "prompts", "query"}


def test_no_log_call_passes_caption_variables():
    """A static backstop for the code paths the run above does not reach (GUI screens, workers)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("debug", "info", "warning", "error", "exception", "critical", "log"):
                continue
            if not (
                isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logger", "logging")
            ):
                continue
            names = {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
            names |= {n.attr for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Attribute)}
            if names & _CAPTION_NAMES:
                offenders.append(f"{path.relative_to(REPO).as_posix()}:{node.lineno}")
    assert offenders == []
