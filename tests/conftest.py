"""Test-wide setup: offscreen Qt, no network, isolated user folders."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.fixtures_data", "tests.fixtures_models", "tests.fixtures_runs"]


class _NetworkBlocked(RuntimeError):
    pass


def _refuse(*_args, **_kwargs):
    raise _NetworkBlocked("outbound network access is blocked in tests")


@pytest.fixture(autouse=True)
def _block_network(monkeypatch):
    """Every test runs with outbound sockets refused (AF_UNIX stays usable)."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse()
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches, logs and runs go to a per-test folder, never the user's."""
    home = tmp_path_factory.mktemp("clipstudio_home")
    monkeypatch.setenv("CLIPSTUDIO_HOME", str(home))
    monkeypatch.setenv("CLIPSTUDIO_CACHE_DIR", str(home / "cache"))
    return home
