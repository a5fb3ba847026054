"""The Explore screen's embedding map with many points: GUI stalls while panning, zooming and hovering.

Shows ``EmbeddingMap`` with N clustered points coloured by 8 classes, then pans, zooms and moves
the mouse over it, painting each frame, while the app's stall meter (``gui.heartbeat``) beats on
the GUI thread. Also times the one-off steps (showing the points, recolouring by a number).
Run under a real display (e.g. ``xvfb-run -a python -m bench.bench_explore_map``) so frames are painted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from clipstudio.gui.heartbeat import Heartbeat, stall_stats
from clipstudio.gui.widgets.embedding_map import EmbeddingMap, category_groups, value_groups

FRAME_S = 0.016


def clustered_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    centres = rng.normal(0, 6, (8, 2))
    return (centres[labels] + rng.normal(0, 1.2, (n, 2))).astype(np.float32), labels


def settle(app: QApplication, seconds: float = FRAME_S) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def run(n: int, steps: int) -> dict:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    xy, labels = clustered_points(n)
    widget = EmbeddingMap()
    widget.resize(900, 700)
    widget.show()
    settle(app, 0.3)
    t0 = time.perf_counter()
    widget.set_points(xy, [f"/images/{i}.png" for i in range(n)], lambda row: f"image {row}")
    widget.set_groups(category_groups(labels, [f"class {i}" for i in range(8)]))
    settle(app, 0.05)
    show_s = time.perf_counter() - t0

    beat = Heartbeat()
    beat.start()
    spans = []
    vb = widget.view_box
    start = time.perf_counter()
    for i in range(steps):  # pan right then left
        vb.translateBy(x=0.3 if i < steps // 2 else -0.3, y=0.0)
        settle(app)
    for i in range(steps):  # zoom in then out around the centre
        vb.scaleBy((0.95, 0.95) if i < steps // 2 else (1 / 0.95, 1 / 0.95))
        settle(app)
    rng = np.random.default_rng(1)
    scene = vb.sceneBoundingRect()
    for _ in range(steps):  # the mouse moving over the map
        p = QPointF(scene.left() + rng.random() * scene.width(), scene.top() + rng.random() * scene.height())
        widget.plot.scene().sigMouseMoved.emit(p)
        settle(app, 0.04)
    spans.append((start, time.perf_counter()))
    t1 = time.perf_counter()
    widget.set_groups(value_groups(rng.random(n).astype(np.float32)))
    settle(app, 0.05)
    recolour_s = time.perf_counter() - t1
    beat.stop()
    widget.shutdown()
    widget.close()
    return {
        "points": n,
        "show_points_s": round(show_s, 2),
        "recolour_s": round(recolour_s, 2),
        "pan_zoom_hover": stall_stats(beat.ticks, spans),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if len(args.points) > 1:  # one process per size: each measures a fresh app
        results = []
        for n in args.points:
            out = subprocess.run([sys.executable, "-m", "bench.bench_explore_map", "--points", str(n),
                                  "--steps", str(args.steps)], check=True, capture_output=True, text=True).stdout
            results += json.loads(out[out.index("["): out.rindex("]") + 1])
    else:
        results = [run(args.points[0], args.steps)]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
