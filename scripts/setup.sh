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
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, ray; print(f"torch {torch.__version__}, ray {ray.__version__}")'))"
