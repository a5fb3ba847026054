#!/usr/bin/env bash
# Set up a development / headless environment in .venv on Linux (CPU).
#
# torch is installed FIRST, at exactly 2.13.0 (CPU build), and every later pip call is
# constrained by installer/constraints.txt so nothing can pull a CUDA torch or torchvision.
# Re-running is safe and fast: already-satisfied packages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

echo "== torch (CPU, pinned)"
"${PIP[@]}" install -q -c installer/constraints.txt "torch==2.13.0"
echo "== clipstudio and its dependencies"
"${PIP[@]}" install -q -c installer/constraints.txt -e ".[dev]"

.venv/bin/python - <<'PY'
import torch, transformers
assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"== ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"CUDA available: {torch.cuda.is_available()}")
PY
