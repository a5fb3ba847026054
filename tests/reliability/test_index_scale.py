"""A 100k-item dataset index loads without opening an image and in under 500 MB.

The time (under 5 s) is measured by ``bench/bench_index_scale.py``, not asserted here: shared runners
are too noisy for a timing assert. Peak memory of a fresh process is steady enough to assert.
"""

from __future__ import annotations

import sys

import pytest

from bench.bench_index_scale import N_ITEMS, TARGET_MB, load_in_subprocess, make_index


@pytest.mark.slow  # builds a 100k index
@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS comes from resource.getrusage")
def test_100k_item_index_loads_lazily_in_under_500_mb(ram_folder):
    index = make_index(ram_folder / "big", N_ITEMS)

    result = load_in_subprocess(index)

    assert result["n"] == N_ITEMS and result["n_problems"] == 0, result
    assert result["images_opened"] == 0, result
    assert result["peak_rss_mb"] < TARGET_MB, result
