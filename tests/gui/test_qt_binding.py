"""The Qt binding itself: PySide6 6.12.0 dropped a reference to None on every QLabel.setText.

None's reference count then runs down during a session (the Train screen sets labels every step) until
Python aborts with "deallocating None". pyproject.toml excludes that release; this test fails on any
installed binding with the same fault, so a new release that has it can't slip in.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_setting_label_texts_leaves_none_and_booleans_reference_counts_alone(qtbot):
    label = QLabel("start")
    qtbot.addWidget(label)
    label.setText("warm-up")  # anything a first call caches
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for i in range(200):
        label.setText(f"step {i}")
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    # Other threads may hold or drop a few references meanwhile; 6.12.0 lost 200 of None's here.
    assert all(abs(a - b) < 50 for a, b in zip(after, before, strict=True)), (before, after)
