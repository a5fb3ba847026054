"""Double-click launcher for CLIP Studio (also the PyInstaller entry point of the windowed build).

    python main.py [DATASET]                   # open the window
    python main.py --selftest [--report FILE]  # check this install offline, headless (see clipstudio.selftest)
"""

import os
import sys

# A windowed (no console) build has no stdout/stderr; transformers, tqdm and print() crash without them.
if sys.stdout is None:
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # kept open for the process lifetime
if sys.stderr is None:
    sys.stderr = open(os.devnull, "w", encoding="utf-8")

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()

    # Resources are found through sys._MEIPASS when frozen: see clipstudio.engine.storage.paths.resources_dir.
    if "--selftest" in sys.argv[1:]:
        from clipstudio.selftest import main as selftest_main

        sys.exit(selftest_main(sys.argv[1:]))

    from clipstudio.gui.app import main

    sys.exit(main())
