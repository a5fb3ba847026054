"""Screenshots of every screen with the bundled sample open: ``python -m clipstudio.gui.screenshots``.

Works offscreen (``QT_QPA_PLATFORM=offscreen``) and under Xvfb (``xvfb-run -a``). Uses a throw-away
app-data folder and QSettings, so the user's recent paths and caches are left alone; error dialogs
are logged instead of shown, so nothing waits for a click. Screens still being written show up as
their error page.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from clipstudio.engine.storage.paths import samples_dir
from clipstudio.gui.app import create_application
from clipstudio.gui.errors import install_exception_hooks, setup_logging
from clipstudio.gui.gc_policy import GuiThreadGarbageCollector
from clipstudio.gui.main_window import MainWindow
from clipstudio.gui.screens import SCREENS
from clipstudio.gui.state import AppState

log = logging.getLogger("clipstudio.gui.screenshots")


def _wait_until(app, predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _settle(app, seconds: float) -> None:
    _wait_until(app, lambda: False, seconds)


def _no_blocking_dialogs() -> None:
    """Dialogs would wait for a click that never comes: log their text and carry on."""

    def logged_exec(box):
        print(f"[dialog] {box.text()}", file=sys.stderr)
        if box.detailedText():
            print(box.detailedText(), file=sys.stderr)
        return QMessageBox.StandardButton.Ok

    QMessageBox.exec = logged_exec  # type: ignore[method-assign]


# What each screen does before its picture, when the screen has that public method (duck-typed, so
# a screen still being written is simply captured as it is).
# Further tabs of a screen to capture after its first picture (by tab title).
SCREEN_TABS: dict[str, tuple[str, ...]] = {"results": ("ROC / PR", "Calibration")}
SAMPLE_QUERY = "a chest X-ray showing pneumonia"
SCREEN_ACTIONS: dict[str, tuple[str, tuple]] = {
    "prompts": ("evaluate", ()),
    "results": ("evaluate", ()),
    "retrieval": ("search_text", (SAMPLE_QUERY,)),
}


@contextmanager
def user_folder(path: str | None, prefix: str) -> Iterator[str]:
    """The per-user folder (runs, caches) for a scripted session: ``path`` as given (created if
    missing, kept), or a temporary folder removed afterwards."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield str(Path(path))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        yield home


def start_scripted_app():
    """The QApplication for a script driving the app: logging, hooks and GC policy as the app has, no modal dialogs.

    QSettings go to the (throw-away) ``CLIPSTUDIO_HOME``, so the user's window state and recent
    paths are left alone. Returns ``(app, uninstall_hooks)``.
    """
    setup_logging()
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(Path(os.environ["CLIPSTUDIO_HOME"]) / "qsettings"))
    app = create_application()
    hooks = install_exception_hooks()
    collector = GuiThreadGarbageCollector(app)  # as the app does: never collect in a worker thread
    _no_blocking_dialogs()

    def uninstall_hooks() -> None:
        collector.stop()
        hooks()

    return app, uninstall_hooks


def _run_action(window, key: str) -> None:
    screen = window.screen_for(key)
    name, args = SCREEN_ACTIONS.get(key, ("", ()))
    if screen is None or not name or not callable(getattr(screen, name, None)):
        return
    try:
        getattr(screen, name)(*args)
    except Exception:
        log.exception("%s screen: %s() failed", key, name)


def capture(out_dir: Path, *, dataset: Path | None = None, size: tuple[int, int] = (1280, 800),
            settle_s: float = 1.0, load_timeout_s: float = 120.0, with_model: bool = True) -> list[Path]:
    """Open the app on ``dataset`` (default: the bundled sample), save one PNG per screen.

    With ``with_model`` the built-in model is loaded and the screens that score or search do so first.
    """
    dataset = dataset or samples_dir() / "chest_xray"
    out_dir.mkdir(parents=True, exist_ok=True)
    app, uninstall_hooks = start_scripted_app()
    state = AppState()
    window = MainWindow(state)
    window.resize(*size)
    window.show()
    _settle(app, settle_s)
    saved: list[Path] = []
    try:
        if window.screen_for("data") is not None:
            window.open_dataset(str(dataset))
            if not _wait_until(app, lambda: state.dataset is not None, load_timeout_s):
                log.warning("the dataset did not load within %.0f s", load_timeout_s)
            _wait_until(app, lambda: not window.busy_screens() and state.health is not None, load_timeout_s)
        model_screen = window.screen_for("model")
        if with_model and model_screen is not None and callable(getattr(model_screen, "load", None)):
            window.show_screen("model")
            model_screen.load()  # the screen's default choice: the built-in offline model
            if not _wait_until(app, lambda: state.model is not None, load_timeout_s):
                log.warning("the model did not load within %.0f s", load_timeout_s)
        _wait_until(app, lambda: not window.device_label.text().endswith("detecting…"), 30)
        for index, (key, _spec) in enumerate(SCREENS, start=1):
            window.show_screen(key)
            _settle(app, settle_s)
            if with_model and state.model is not None:
                _run_action(window, key)
                _settle(app, 0.3)
            _wait_until(app, lambda: not window.busy_screens(), load_timeout_s)
            _settle(app, 0.2)
            shots = [(f"{index:02d}_{key}.png", None)]
            tabs = getattr(window.screen_for(key), "tabs", None)
            for letter, title in zip("bcdefgh", SCREEN_TABS.get(key, ()), strict=False):
                slug = title.lower().replace(" / ", "_").replace(" ", "_")
                shots.append((f"{index:02d}{letter}_{key}_{slug}.png", title))
            for name, title in shots:
                if title is not None and tabs is not None:
                    found = [i for i in range(tabs.count()) if tabs.tabText(i) == title]
                    if not found:
                        continue
                    tabs.setCurrentIndex(found[0])
                    _settle(app, 0.3)
                path = out_dir / name
                if not window.grab().save(str(path)):
                    raise OSError(f"could not write {path}")
                saved.append(path)
                print(path)
            if tabs is not None:
                tabs.setCurrentIndex(0)
    finally:
        window.shutdown()
        window.close()
        uninstall_hooks()
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipstudio.gui.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNGs (default docs/screenshots)")
    parser.add_argument("--data", default=None, help="dataset to open (default: the bundled chest X-ray sample)")
    parser.add_argument("--size", default="1280x800", help="window size WxH (default 1280x800)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to let each screen settle (default 1)")
    parser.add_argument("--home", default=None,
                        help="per-user folder for runs and caches (default: a temporary folder, removed afterwards)")
    parser.add_argument("--no-model", action="store_true", help="don't load the built-in model first")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with user_folder(args.home, "clipstudio-screenshots-") as home:
        os.environ["CLIPSTUDIO_HOME"] = home
        saved = capture(Path(args.out), dataset=Path(args.data) if args.data else None,
                        size=(width, height), settle_s=args.settle, with_model=not args.no_model)
    print(f"saved {len(saved)} screenshots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
