#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv, idempotently.
#
# On a CPU machine this installs the CPU build of torch first: a plain `torch` requirement
# would otherwise pull a several-GB CUDA build. On a GPU machine, install the CUDA torch
# you want into .venv first (see README); this script keeps whatever torch it finds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build: a wheel pip can already see without an index (a local wheel house, as on our CI
# machines) is used as is; otherwise PyTorch's CPU index, since PyPI's Linux torch is the CUDA build.
TORCH="torch==2.13.0"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    if .venv/bin/python -m pip install --quiet --no-index --no-deps "$TORCH" 2>/dev/null; then
        .venv/bin/python -m pip install --quiet "$TORCH"  # its dependencies, from the usual index
    else
        .venv/bin/python -m pip install --quiet "$TORCH" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
    fi
fi
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, ray; print(f"torch {torch.__version__}, ray {ray.__version__}")'))"
