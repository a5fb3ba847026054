"""Reading the text and JSON files a user hands us (annotations, configs, sweeps, class texts).

Every way such a file can be unusable (missing, a folder, unreadable, not UTF-8, malformed JSON,
absurd numbers or nesting) becomes one ``ClipStudioError`` sentence naming the file and the reason,
never a traceback. A UTF-8 byte order mark (Notepad's default) is accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clipstudio.engine.errors import ClipStudioError, DataError


def read_text(path: str | os.PathLike, what: str, *, error: type[ClipStudioError] = DataError) -> str:
    """The file as text (UTF-8, with or without a BOM).

    ``what`` names the file in messages ("config file"); ``error`` is the ClipStudioError raised.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found.") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a {what}.") from None
    except OSError as exc:
        raise error(f"{path}: can't read the {what} ({exc.strerror or exc}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path} is not UTF-8 text (invalid byte at position {exc.start}); save it as UTF-8 and try again."
        ) from None


def read_json(path: str | os.PathLike, what: str, *, error: type[ClipStudioError] = DataError) -> object:
    """The parsed JSON of the file; see ``read_text`` for ``what`` and ``error``."""
    path = Path(path)
    text = read_text(path, what, error=error)
    if not text.strip():
        raise error(f"{path}: the file is empty; expected JSON.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}).") from None
    except RecursionError:
        raise error(f"{path}: not usable JSON (nested too deeply).") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise error(f"{path}: not usable JSON (a number too long to read).") from None
