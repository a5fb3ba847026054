"""What the caches share: file keys, the SQLite lookup by key, decoding ahead in order, throttled progress."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import numpy as np
import pytest

from clipstudio.engine.cache.file_index import (
    Progress,
    decode_ahead,
    decode_or_problem,
    discard_database,
    ensure_schema,
    file_key,
    matching_rows,
)
from clipstudio.engine.data.dataset import Problem
from tests.engine.fake_model import COLOURS, write_png

TABLE = "CREATE TABLE IF NOT EXISTS items (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, value TEXT)"


def test_file_key_changes_with_size_or_mtime_and_is_none_for_a_missing_file(tmp_path):
    path = write_png(tmp_path / "a.png", COLOURS["red"])
    key = file_key(path)
    assert key == (os.path.abspath(path), path.stat().st_size, path.stat().st_mtime_ns)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_key(path) != key
    assert file_key(tmp_path / "missing.png") is None


def _index(tmp_path, rows) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "index.sqlite")
    ensure_schema(conn, 1, [TABLE], "test index")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
    return conn


def test_matching_rows_finds_only_keys_whose_size_and_mtime_match(tmp_path):
    conn = _index(tmp_path, [("/a", 1, 10, "A"), ("/b", 2, 20, "B"), ("/c", 3, 30, "C")])
    keys = [("/a", 1, 10), None, ("/b", 2, 21), ("/c", 3, 30), ("/a", 1, 10), ("/nowhere", 1, 1)]
    assert sorted(matching_rows(conn, "items", "value", keys)) == [(0, ("A",)), (3, ("C",)), (4, ("A",))]
    conn.close()


def test_matching_rows_handles_more_keys_than_sqlite_takes_at_once(tmp_path):
    n = 2_345  # several chunks of host parameters
    conn = _index(tmp_path, [(f"/img/{i}", i, i, str(i)) for i in range(n)])
    found = dict(matching_rows(conn, "items", "value", [(f"/img/{i}", i, i) for i in range(n)]))
    assert len(found) == n and found[n - 1] == (str(n - 1),)
    conn.close()


def test_ensure_schema_stamps_a_new_database_and_refuses_another_version(tmp_path):
    conn = _index(tmp_path, [])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    ensure_schema(conn, 1, [TABLE], "test index")  # the same version again is fine
    conn.execute("PRAGMA user_version = 7")
    with pytest.raises(sqlite3.DatabaseError, match="unknown test index schema version 7"):
        ensure_schema(conn, 1, [TABLE], "test index")
    conn.close()


def test_discard_database_removes_the_file_and_its_journals(tmp_path):
    db = tmp_path / "index.sqlite"
    for suffix in ("", "-journal", "-wal"):
        (tmp_path / f"index.sqlite{suffix}").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("other files stay")
    discard_database(db)
    discard_database(db)  # nothing left to delete is fine
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_decode_or_problem_gives_the_converted_image_or_a_short_reason(tmp_path):
    good = write_png(tmp_path / "good.png", COLOURS["blue"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")

    pixels = decode_or_problem(good, np.asarray)
    assert pixels.shape == (8, 8, 3) and tuple(pixels[0, 0]) == COLOURS["blue"]
    problem = decode_or_problem(broken, np.asarray)
    assert isinstance(problem, Problem) and problem.path == str(broken)
    assert problem.reason.startswith("not an image") and str(tmp_path) not in problem.reason
    assert decode_or_problem(tmp_path / "gone.png", np.asarray).reason == "file not found"


def test_decode_or_problem_reports_a_read_failure_as_such(tmp_path):
    good = write_png(tmp_path / "good.png", COLOURS["blue"])

    def vanished(_image):
        raise FileNotFoundError(2, "No such file or directory")

    assert decode_or_problem(good, vanished).reason == "cannot read the file (No such file or directory)"


def test_decode_ahead_yields_in_order_and_keeps_at_most_lookahead_queued():
    started: list[int] = []
    lock = threading.Lock()

    def decode(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i

    order = [5, 3, 8, 1, 0, 9, 2]
    seen = []
    for i, value in decode_ahead(decode, order, workers=3, lookahead=2, name="test-decode"):
        assert len(started) <= len(seen) + 3  # the one handed out, plus at most `lookahead` ahead
        seen.append((i, value))
    assert seen == [(i, i * i) for i in order]


def test_closing_decode_ahead_early_skips_the_rest():
    started: list[int] = []

    def decode(i: int) -> int:
        started.append(i)
        return i

    items = decode_ahead(decode, range(1000), workers=1, lookahead=4, name="test-decode")
    assert next(items) == (0, 0)
    items.close()
    assert len(started) <= 5  # the one handed out and the four queued behind it, not 1000
    assert not [t for t in threading.enumerate() if t.name.startswith("test-decode")]  # threads joined


def test_progress_reports_changes_at_most_every_tenth_of_a_second_unless_forced():
    events = []
    progress = Progress(events.append, "decode images", 10)
    for done in range(10):
        progress.update(done)
    progress.update(10, force=True)
    progress.update(10, force=True)  # no change: nothing new to say
    assert [e.done for e in events] == [0, 10]
    assert {(e.stage, e.total) for e in events} == {("decode images", 10)}
