#!/usr/bin/env bash
# The GPU checks, ready for a machine with one NVIDIA GPU, in at most 8 minutes. From the
# repository root:
#
#     bash bench/gpu/run.sh [OUT_FOLDER]        # default bench/results/gpu
#
# 1. vLLM against transformers (on the GPU) sampling and TA scoring, the same synthetic models,
#    prompts and settings (bench/inference/vllm_cpu.py --device cuda);
# 2. ZeRO-2 against ZeRO-3 training of a ~0.5B-parameter model built from a config, bf16, on Ray
#    Train (bench/train/bench.py --gpu);
# 3. one whole run of the pipeline on the GPU: the demo with training and both Serve deployments
#    on it (vLLM where installed).
#
# Models are built from configs (no downloads). Each part runs under its own time limit and is
# skipped, with the reason, when a package it needs (vllm, deepspeed, ray) is absent, so the
# script runs unchanged on any single-GPU machine; everything it measured is in OUT_FOLDER.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_FOLDER=${1:-bench/results/gpu}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$OUT_FOLDER"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
started=$(date +%s)

have() { "$PY" -c "import $1" >/dev/null 2>&1; }
part() {  # part NAME SECONDS NEEDS... -- COMMAND...
  local name=$1 limit=$2; shift 2
  local needs=()
  while [ "$1" != "--" ]; do needs+=("$1"); shift; done; shift
  for module in "${needs[@]}"; do
    if ! have "$module"; then echo "== $name: skipped ($module is not installed)"; return; fi
  done
  echo "== $name (at most ${limit} s)"
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT_FOLDER/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc after $(( $(date +%s) - t0 )) s; log $OUT_FOLDER/$name.log"
  tail -n 5 "$OUT_FOLDER/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 1; }
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

part vllm_vs_transformers 120 torch transformers vllm -- \
  "$PY" -m bench.inference.vllm_cpu --device cuda --questions 512 --threads 4 --out "$OUT_FOLDER/vllm_vs_transformers.json"

part zero2_vs_zero3 180 torch deepspeed ray -- \
  "$PY" -m bench.train.bench --gpu --gpus 1 --out "$OUT_FOLDER/zero2_vs_zero3.json"

BACKEND=$(have vllm && echo vllm || echo transformers)
part whole_run 160 torch ray -- \
  "$PY" -m tadistill.cli run configs/demo.yaml "run_dir=$OUT_FOLDER/run" method=full \
    train.use_gpu=true train.num_workers=1 train.strategy=deepspeed train.deepspeed.zero_stage=2 train.precision=bf16 \
    inference.launcher=serve "inference.backend=$BACKEND" inference.num_gpus=0.5 inference.num_cpus=1 \
    data.synthetic.pool_size=600 data.synthetic.test_size=200 budget.requests=200

echo "== done in $(( $(date +%s) - started )) s; results in $OUT_FOLDER"
