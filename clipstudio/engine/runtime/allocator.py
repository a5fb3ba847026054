"""glibc malloc settings that make torch on CPU faster: set once, in-process, before models load.

glibc's defaults hand every large tensor buffer (over a threshold that starts at 128 KiB) to
``mmap`` and give freed memory back to the kernel eagerly, so each forward pass page-faults and
zeroes its activations afresh. A fixed 32 MiB mmap threshold and a 256 MiB trim threshold keep
those buffers in the heap for reuse: the same as starting Python with ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` set, but done with ``mallopt`` so the ``clipstudio`` console script and
the app get it without a wrapper. It costs up to 256 MiB of freed memory kept for reuse.

Applied by ``load_model``; only on Linux with glibc; left alone when the user set either variable
or ``CLIPSTUDIO_MALLOC_TUNING=0``. See docs/PERFORMANCE.md for the measurement.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>
_USER_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_done: bool | None = None


def tune_malloc() -> bool:
    """Apply the settings once per process; True when they are in force (here or from the environment)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if any(v in os.environ for v in _USER_VARS):
        _done = True  # the user's own settings win
        return _done
    flag = os.environ.get("CLIPSTUDIO_MALLOC_TUNING", "1").strip().lower()
    if flag in ("0", "false", "no", "off") or not sys.platform.startswith("linux"):
        return _done
    if platform.libc_ver()[0] != "glibc":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return _done
    _done = ok
    return _done
