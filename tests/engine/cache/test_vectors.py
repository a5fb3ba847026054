"""The vector caches: image embeddings on disk per model, text embeddings in memory."""

from __future__ import annotations

import logging
import os
import sqlite3

import numpy as np
import pytest

from clipstudio.engine.cache.vectors import EmbeddingCache, TextEmbeddingCache
from tests.engine.fake_model import COLOURS, write_png

LOGGER = "clipstudio.engine.cache.vectors"


@pytest.fixture
def files(tmp_path):
    return [write_png(tmp_path / "imgs" / f"{n}.png", COLOURS[n]) for n in ("red", "green", "blue")]


def _vectors(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_stored_vectors_come_back_for_unchanged_files(files):
    cache = EmbeddingCache()
    vectors = _vectors(3)
    cache.put_many("model-a", files, vectors)
    hits = EmbeddingCache().get_many("model-a", [files[2], files[0], files[2]])
    assert sorted(hits) == [0, 1, 2]  # a file listed twice is found at both positions
    np.testing.assert_array_equal(hits[0], vectors[2])
    np.testing.assert_array_equal(hits[1], vectors[0])
    np.testing.assert_array_equal(hits[2], vectors[2])
    assert hits[0].dtype == np.float32 and hits[0].flags.writeable


def test_each_model_has_its_own_database_under_cache_dir(files, _isolated_home):
    cache = EmbeddingCache()
    cache.put_many("abc123", files, _vectors(3))
    assert (_isolated_home / "cache" / "embeddings" / "abc123" / "embeddings.sqlite").is_file()
    assert cache.get_many("other", files) == {}
    assert cache.db_path("../../evil").parent.parent == cache.root  # never a folder outside the cache


def test_a_changed_file_is_a_miss(files):
    cache = EmbeddingCache()
    cache.put_many("m", files, _vectors(3))
    write_png(files[0], COLOURS["white"], size=12)  # new content and size
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # same bytes, newer mtime
    assert sorted(cache.get_many("m", files)) == [2]
    assert cache.get_many("m", [files[0].with_name("missing.png")]) == {}


def test_cache_files_written_before_stay_valid(files):
    """The on-disk format: table ``vectors`` (path, size, mtime_ns, dim, vector), user_version 1."""
    cache = EmbeddingCache()
    db = cache.db_path("old")
    db.parent.mkdir(parents=True)
    vector = np.arange(4, dtype=np.float32)
    st = os.stat(files[0])
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE vectors (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " dim INTEGER NOT NULL, vector BLOB NOT NULL)"
        )
        conn.execute(
            "INSERT INTO vectors VALUES (?, ?, ?, ?, ?)",
            (os.path.abspath(files[0]), st.st_size, st.st_mtime_ns, 4, vector.tobytes()),
        )
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    np.testing.assert_array_equal(cache.get_many("old", files)[0], vector)


def test_a_damaged_row_is_a_miss(files):
    cache = EmbeddingCache()
    cache.put_many("m", files, _vectors(3))
    with sqlite3.connect(cache.db_path("m")) as conn:
        conn.execute("UPDATE vectors SET dim = 5 WHERE path = ?", (os.path.abspath(files[1]),))
    conn.close()
    assert sorted(cache.get_many("m", files)) == [0, 2]


def test_corrupt_database_is_discarded_and_rebuilt(files, caplog):
    cache = EmbeddingCache()
    cache.put_many("m", files, _vectors(3))
    cache.db_path("m").write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert EmbeddingCache().get_many("m", files) == {}
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    cache = EmbeddingCache()
    cache.put_many("m", files, _vectors(3))
    assert sorted(cache.get_many("m", files)) == [0, 1, 2]


def test_a_database_of_another_schema_version_is_rebuilt(files, caplog):
    cache = EmbeddingCache()
    cache.db_path("m").parent.mkdir(parents=True)
    with sqlite3.connect(cache.db_path("m")) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        cache.put_many("m", files, _vectors(3))
    assert "schema version 99" in caplog.text
    assert sorted(cache.get_many("m", files)) == [0, 1, 2]


def test_an_unusable_cache_folder_warns_once_and_answers_empty(files, tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    cache = EmbeddingCache(blocker)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            cache.put_many("m", files, _vectors(3))
            assert cache.get_many("m", files) == {}
    assert len([r for r in caplog.records if "continuing without it" in r.getMessage()]) == 1


def test_put_many_refuses_a_count_mismatch(files):
    with pytest.raises(ValueError, match="3 paths but 2 vectors"):
        EmbeddingCache().put_many("m", files, _vectors(2))


def test_text_cache_holds_vectors_per_model_and_text():
    cache = TextEmbeddingCache()
    vectors = _vectors(2)
    cache.put_many("model-a", ["red", "green"], vectors)
    found = cache.get_many("model-a", ["green", "blue", "red"])
    assert list(found) == ["green", "red"]
    np.testing.assert_array_equal(found["green"], vectors[1])
    assert cache.get_many("model-b", ["red"]) == {}
    assert len(cache) == 2


def test_text_cache_drops_the_least_recently_used_beyond_its_size():
    cache = TextEmbeddingCache(max_texts=2)
    cache.put_many("m", ["red", "green"], _vectors(2))
    cache.get_many("m", ["red"])  # red is now the most recent
    cache.put_many("m", ["blue"], _vectors(1))
    assert len(cache) == 2
    assert list(cache.get_many("m", ["red", "green", "blue"])) == ["red", "blue"]
