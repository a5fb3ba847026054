"""The glibc allocator tuning: applied once per process, and an environment variable switches it off."""

from __future__ import annotations

import platform
import subprocess
import sys

CODE = "from clipstudio.engine.runtime.allocator import tune_malloc; print(tune_malloc(), tune_malloc())"


def test_allocator_tuning_is_applied_once_and_can_be_switched_off():
    on = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert on[0] == on[1]
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert on == ["True", "True"]
    env = {"CLIPSTUDIO_MALLOC_TUNING": "0", "PATH": ""}
    off = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.split() == ["False", "False"]
