"""The ``clipstudio`` command line: argparse over the engine, with the same config objects as the GUI.

``main(argv)`` parses, dispatches to one module per command (``clipstudio.cli.<command>``) and turns
user errors (``ClipStudioError``) into one line on stderr and exit code 2; bugs keep their traceback.
Heavy imports (torch, transformers) happen inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from clipstudio import __version__
from clipstudio.cli import demo, embed, explore, export, retrieve, search, train, zeroshot
from clipstudio.cli import eval as eval_command  # as: the modules are named after commands, not builtins
from clipstudio.cli import inspect as inspect_command
from clipstudio.cli.args import CliParser
from clipstudio.cli.console import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from clipstudio.cli.processes import print_user_error
from clipstudio.engine.errors import ClipStudioError

# Each command module has add_parser(subparsers) and run(args) -> exit code.
COMMANDS = {
    "inspect": inspect_command,
    "zeroshot": zeroshot,
    "retrieve": retrieve,
    "search": search,
    "embed": embed,
    "export": export,
    "train": train,
    "eval": eval_command,
    "explore": explore,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="clipstudio",
        description="Adapt CLIP-style image-text models to your own medical images.",
        epilog="Run 'clipstudio COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"clipstudio {__version__}")
    parser.add_argument("--selftest", action="store_true",
                        help="check this install offline and exit (same as 'clipstudio selftest')")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    for module in (inspect_command, zeroshot, retrieve, search, embed, export, train, eval_command, explore):
        module.add_parser(sub)
    p = sub.add_parser("selftest", help="check this install offline: window, built-in model, zero-shot, training")
    p.add_argument("--report", metavar="FILE", help="where to write the JSON report (default: app data folder)")
    demo.add_parser(sub)
    return parser


def gui_unavailable_reason() -> str:
    """Why the window can't open here ("" when it can): no PySide6, or (on Linux) no display."""
    if importlib.util.find_spec("PySide6") is None:
        return "The CLIP Studio window needs PySide6, which is not installed."
    display_vars = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    if sys.platform.startswith("linux") and not any(os.environ.get(name) for name in display_vars):
        return "No display was found for the CLIP Studio window."
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None and not sys.argv[1:]:
        # A bare `clipstudio` typed or double-clicked opens the window where there is a screen for it.
        # Only from the real command line: main([]) from code or tests prints the help, never a window.
        reason = gui_unavailable_reason()
        if not reason:
            from clipstudio.gui.app import main as gui_main  # deferred: Qt, only when a window opens

            return gui_main([])
        # No screen (a server, CI, ssh): run the headless demo, the same end-to-end job without a window.
        print(f"{reason} Running the headless demo instead ('clipstudio demo'); "
              "'clipstudio --help' lists every command.\n", flush=True)
        argv = ["demo"]
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # run again by each of several processes
    if args.selftest or args.command == "selftest":
        from clipstudio.selftest import run_selftest  # deferred: the install check sits above the CLI

        return run_selftest(getattr(args, "report", None))
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return COMMANDS[args.command].run(args)
    except ClipStudioError as exc:
        print_user_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clipstudio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
