"""The GUI thread stays responsive while the Train screen trains a model in its worker.

A 10 ms QTimer heartbeat runs on the GUI thread while the real TrainScreen (live plots, log, progress)
trains in its TaskWorker; the longest gap between heartbeats minus 10 ms is the longest stall a user
could feel. The same heartbeat on an idle event loop is the baseline. Offscreen; not a test.

    .venv/bin/python -m bench.bench_gui_stall                       # tiny model, 4,800 steps (about a minute)
    .venv/bin/python -m bench.bench_gui_stall --model builtin --seconds 90
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write_results

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "resources" / "samples" / "chest_xray"


def _heartbeats(run_until, timeout_s: float, trace_file=None) -> list[float]:
    """Heartbeat times while a real event loop runs until ``run_until()`` (or ``timeout_s``)."""
    from PySide6.QtCore import QEventLoop, QTimer

    from clipstudio.gui.heartbeat import Heartbeat

    loop = QEventLoop()
    heartbeat = Heartbeat(trace_file=trace_file)
    deadline = time.monotonic() + timeout_s

    def check() -> None:
        if run_until() or time.monotonic() > deadline:
            loop.quit()

    checker = QTimer()
    checker.setInterval(50)
    checker.timeout.connect(check)
    heartbeat.start()
    checker.start()
    loop.exec()
    heartbeat.stop()
    checker.stop()
    return heartbeat.ticks


def _tiny_setup(folder: Path) -> tuple[str, str]:
    """A tiny random CLIP model and 3 generated colour classes (80 images each)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image

    from tests.fixtures_models import build_tiny_clip

    model = build_tiny_clip(folder / "tiny_clip")
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for name, (r, g, b) in colours.items():
        (folder / "data" / name).mkdir(parents=True)
        for i in range(80):
            shade = 4 * (i % 10)
            Image.new("RGB", (32, 32), (r - shade, g - shade, b - shade)).save(
                folder / "data" / name / f"{i}.png"
            )
    return str(model), str(folder / "data")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help='"tiny" (built offline) or any model spec, e.g. builtin')
    ap.add_argument(
        "--data", default="", help="dataset (default: generated for tiny, the chest X-ray sample otherwise)"
    )
    ap.add_argument("--method", default="full")
    ap.add_argument("--epochs", type=int, default=None, help="default: 100 for tiny (about a minute), else 15")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=300.0, help="press Stop after this long (default 300)")
    ap.add_argument("--target-ms", type=float, default=50.0)
    ap.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s) to try")
    ap.add_argument("--name", default="gui_stall")
    ap.add_argument("--trace-stalls", default="", help="dump every thread's stack to this file on each stall > 50 ms")
    args = ap.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from clipstudio.engine.config import TrainConfig
    from clipstudio.engine.data import load_dataset
    from clipstudio.engine.events import TrainingStatus
    from clipstudio.gui.gc_policy import GuiThreadGarbageCollector, freeze_startup_objects
    from clipstudio.gui.heartbeat import stall_stats
    from clipstudio.gui.screens.train_screen import TrainScreen
    from clipstudio.gui.screenshots import _no_blocking_dialogs
    from clipstudio.gui.state import AppState
    from clipstudio.gui.style import apply_style

    app = QApplication.instance() or QApplication([])
    apply_style(app)
    _no_blocking_dialogs()  # a failed run's error dialog would wait for a click that never comes
    GuiThreadGarbageCollector(app)  # the app's GC policy: collections run on the GUI thread, and count
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CLIPSTUDIO_HOME"] = str(tmp / "home")
        if args.model == "tiny":
            model, data = _tiny_setup(tmp)
        else:
            model, data = args.model, str(SAMPLE_DATA)
        data = args.data or data
        state = AppState()
        state.set_dataset(load_dataset(data), data)
        state.model_spec = model
        screen = TrainScreen(state)
        screen.resize(1400, 900)
        screen.show()
        epochs = args.epochs or (100 if args.model == "tiny" else 15)
        cfg = TrainConfig(
            method=args.method, epochs=epochs, batch_size=args.batch_size, output=str(tmp / "run")
        )
        screen.form.set_config(cfg)

        idle = stall_stats(_heartbeats(lambda: False, timeout_s=3.0))
        # The app imports torch/transformers in a worker 1.5 s after its first paint (MainWindow's
        # device detection); do the same here, measured on its own, so the training run below
        # sees what a user's first training run sees.
        from clipstudio.gui.main_window import detect_device
        from clipstudio.gui.workers import TaskWorker

        preloaded = "torch" in sys.modules  # the tiny model's setup has imported torch and transformers already
        warm = TaskWorker(detect_device, name="warm-up")
        warm.start()
        warm_up = stall_stats(_heartbeats(warm.isFinished, timeout_s=600))
        warm.wait()
        freeze_startup_objects()  # as MainWindow does once its warm-up has finished
        steps: list[int] = []
        phases: dict[str, float] = {}

        def on_event(event) -> None:  # runs in the worker thread: when the trainer emitted it
            name = type(event).__name__
            if name in ("TrainStarted", "TrainEnded"):
                phases.setdefault(name, time.perf_counter())
            steps.append(getattr(event, "step", 0))

        started = time.monotonic()
        assert screen.start(), screen.message.text()
        screen._worker.event_emitted.connect(on_event, Qt.ConnectionType.DirectConnection)

        def done() -> bool:
            if screen.busy() and time.monotonic() - started > args.seconds:
                screen.stop()
            return screen._worker is None  # finished, and every queued event delivered

        trace = open(args.trace_stalls, "w", encoding="utf-8") if args.trace_stalls else None  # noqa: SIM115
        try:
            ticks = _heartbeats(done, timeout_s=args.seconds + 600, trace_file=trace)
        finally:
            if trace is not None:
                trace.close()
        wall = time.monotonic() - started
        ended = screen._run.get("ended")
        screen.shutdown()
        whole = stall_stats(ticks)
        training = stall_stats(ticks, [(phases.get("TrainStarted", np.inf), phases.get("TrainEnded", np.inf))])

    status = ended.status if ended else "unknown"
    ran = status in (TrainingStatus.COMPLETED, TrainingStatus.EARLY_STOPPED, TrainingStatus.CANCELLED)
    if not ran or not any(steps):
        print(f"bench_gui_stall: training did not run ({status}): {getattr(ended, 'message', '')}", file=sys.stderr)
        return 2  # nothing measured: keep the last results rather than overwrite them with zeros
    label = "tiny CLIP" if args.model == "tiny" else args.model
    what = f"{label}, {args.method}, {max(steps or [0])} steps, {wall:.0f} s, {status}"
    rows = [
        {
            "row": "longest GUI-thread stall while the app's start-up worker imports torch/transformers",
            "baseline": f"idle loop {idle['max_ms']:.1f} ms",
            "ours": f"{warm_up['max_ms']:.1f} ms (once, 1.5 s after the first paint)"
            + (" - torch and transformers were already imported by the tiny model's setup" if preloaded else ""),
            "ratio": "",
            "target": "",
            "machine": machine(),
        },
        {
            "row": f"longest GUI-thread stall, whole run incl. model loading ({what})",
            "baseline": f"idle loop {idle['max_ms']:.1f} ms",
            "ours": f"{whole['max_ms']:.1f} ms",
            "ratio": "",
            "target": "",
            "machine": machine(),
        },
        {
            "row": f"longest GUI-thread stall, TrainStarted to TrainEnded ({what})",
            "baseline": f"idle loop {idle['max_ms']:.1f} ms",
            "ours": f"{training['max_ms']:.1f} ms",
            "ratio": "",
            "target": f"< {args.target_ms:g} ms",
            "machine": machine(),
        },
        {
            "row": f"99th percentile GUI-thread stall, TrainStarted to TrainEnded ({what})",
            "baseline": f"idle loop {idle['p99_ms']:.1f} ms",
            "ours": f"{training['p99_ms']:.1f} ms ({training['over_50ms']} of {training['beats']} beats late > 50 ms)",
            "ratio": "",
            "target": f"< {args.target_ms:g} ms",
            "machine": machine(),
        },
    ]
    json_path, md_path = write_results(args.name, rows)
    print(md_path.read_text(encoding="utf-8"))
    ok = training["max_ms"] < args.target_ms
    print(
        f"{'PASS' if ok else 'MISS'}: longest stall {training['max_ms']:.1f} ms (target {args.target_ms:g} ms); {json_path}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
