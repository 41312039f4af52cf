"""Inference throughput: the Serve path against direct calls, and both against this machine.

    .venv/bin/python -m bench.inference.bench [--texts 1024] [--questions 128] [--smollm2 FOLDER]
                                              [--out docs/results/inference.json]

In one run, side by side, for TA scoring and for student sampling:

- direct: the model called in this process on batches of `batch_size` rows
  (TransformersBackend.score / .generate), at the replica's torch threads;
- serve: the pipeline's path (Ray Data batches of the same size through the async UDFs,
  TAScorer / StudentSampler, 1 replica at the same torch threads, serve.batch merging);
- the machine: torch's fp32 matmul throughput at the same threads (a CPU roofline), and
  the model FLOP/s each path reaches over it: 2 x non-embedding parameters x tokens (prompt
  and output tokens for scoring; for sampling, N x prompt tokens plus the generated ones, as a
  KV-cached generate runs them).

The synthetic models are tiny (their matmuls are small and memory-bound); `--smollm2 FOLDER`
(see bench/quality/smollm2.py `prepare`) adds SmolLM2-135M, direct calls only. Writes
`serve_over_direct` (the lower of sampling and scoring) and `roofline` (named ratios).
Timing figures are ratios measured in this one run; nothing else may run on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _frame(n: int):
    import pandas as pd

    from tadistill.synthetic.problems import generate_problems, gold_solution

    problems = generate_problems(n, seed=2024, min_steps=1, max_steps=5)
    return pd.DataFrame({"id": [f"t{i:04d}" for i in range(n)], "k": 0, "question": [p.question() for p in problems],
                         "text": [gold_solution(p) for p in problems], "answer_type": "number", "options": None})


def matmul_flops(threads: int, size: int = 512, seconds: float = 2.0) -> float:
    """fp32 matmul FLOP/s at `threads` torch threads: the machine's compute limit for these models."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2 * size ** 3 * done / (time.perf_counter() - started)


def dense_parameters(model) -> int:
    """Parameters a token's forward pass multiplies by: all but the embedding lookups."""
    embeddings = {id(p) for m in model.modules() if m.__class__.__name__ == "Embedding" for p in m.parameters()}
    output = model.get_output_embeddings()
    tied = output is not None and id(output.weight) in embeddings
    dense = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    return dense + (output.weight.numel() if tied else 0)  # a tied output layer still multiplies


def _tokens(tokenizer, frame, with_text: bool) -> int:
    from tadistill.tasks.prompts import student_prompt, student_target

    total = 0
    for question, text in zip(frame["question"], frame["text"]):
        total += len(tokenizer(student_prompt(question))["input_ids"])
        if with_text:
            total += len(tokenizer(student_target(text), add_special_tokens=False)["input_ids"])
    return total


def _timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def _direct(backend, frame, batch_size: int, op: str, settings: dict) -> tuple[float, int]:
    """Seconds for the whole frame in batches, and generated tokens (sampling)."""
    from tadistill.tasks.prompts import student_prompt, student_target

    generated = 0
    started = time.perf_counter()
    for start in range(0, len(frame), batch_size):
        chunk = frame.iloc[start:start + batch_size]
        prompts = [student_prompt(q) for q in chunk["question"]]
        if op == "score":
            backend.score(prompts, [student_target(t) for t in chunk["text"]], confidence="min")
        else:
            for texts in backend.generate(prompts, **settings):
                generated += sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return time.perf_counter() - started, generated


def _served(model_path: str, frame, config, op: str) -> tuple[float, int]:
    from ray import serve

    from tadistill.inference.deployments import SAMPLER_APP, SCORER_APP, deploy_sampler, deploy_scorer
    from tadistill.inference.drive import sample_pool, score_texts
    from tadistill.modeling import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    if op == "score":
        deploy_scorer(model_path, config)
        run = lambda rows: score_texts(rows, config.batch_size, num_blocks=4, confidence="min", in_flight=4)  # noqa: E731
        app = SCORER_APP
    else:
        deploy_sampler(model_path, config)
        run = lambda rows: sample_pool(rows, config.batch_size, num_blocks=4, in_flight=4)  # noqa: E731
        app = SAMPLER_APP
    try:
        run(frame.head(config.batch_size))  # warm: the replica's model is loaded, the pools are up
        seconds, out = _timed(lambda: run(frame))
    finally:
        serve.delete(app)
    generated = 0 if op == "score" else sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in out["text"])
    return seconds, generated


def measure(name: str, model_path: str, frame, config, peak: float, serve_too: bool) -> list[dict]:
    import torch

    from tadistill.inference.transformers_backend import TransformersBackend

    torch.set_num_threads(config.torch_threads)
    backend = TransformersBackend(model_path, torch_threads=config.torch_threads)
    dense = dense_parameters(backend.model)
    settings = {"num_samples": config.num_samples, "temperature": config.temperature,
                "max_new_tokens": config.max_new_tokens, "seed": 0}
    rows = []
    for op, sub in (("score", frame), ("sample", frame.head(max(config.batch_size, len(frame) // 8)))):
        _direct(backend, sub.head(config.batch_size), config.batch_size, op, settings)  # warm
        paths = {"direct": lambda: _direct(backend, sub, config.batch_size, op, settings)}
        if serve_too:
            paths["serve"] = lambda: _served(model_path, sub, config, op)
        prompt_tokens = _tokens(backend.tokenizer, sub, with_text=(op == "score"))
        for path, run in paths.items():
            seconds, generated = run()
            # Sampling: each of the N sequences of a question runs its prompt and its own tokens.
            tokens = prompt_tokens + generated if op == "score" else prompt_tokens * config.num_samples + generated
            flops = 2 * dense * tokens / seconds
            row = {"model": name, "op": op, "path": path, "rows": len(sub), "seconds": round(seconds, 2),
                   "rows_per_s": round(len(sub) / seconds, 1), "tokens": tokens, "dense_parameters": dense,
                   "model_gflops": round(flops / 1e9, 2), "over_roofline": round(flops / peak, 3)}
            rows.append(row)
            print(f"{name:>10} {op:>6} {path:>6}: {row['rows_per_s']:8.1f} rows/s, {row['model_gflops']:6.2f} "
                  f"GFLOP/s = {row['over_roofline']:.1%} of matmul", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1024, help="texts scored; a quarter as many questions sampled")
    parser.add_argument("--smollm2", default=None, help="SmolLM2-135M safetensors folder (bench/quality/smollm2.py)")
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "inference.json"))
    args = parser.parse_args()
    import ray
    from ray import serve

    from tadistill.config import InferenceConfig
    from tadistill.services import ray_environment, serve_http_port
    from tadistill.synthetic.models import ensure_synthetic_models

    models = ensure_synthetic_models(REPO / ".cache" / "tadistill")
    # The same batch on both paths: Serve does not merge requests (max_batch_size 1), 4 stay in flight.
    config = InferenceConfig(batch_size=64, max_batch_size=1, torch_threads=1, num_samples=4)
    peak = matmul_flops(config.torch_threads)
    print(f"fp32 matmul at {config.torch_threads} thread(s): {peak / 1e9:.1f} GFLOP/s", flush=True)
    ray_environment()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    serve_http_port("127.0.0.1", 8751)
    frame = _frame(args.texts)
    rows = []
    try:
        rows += measure("synthetic-ta", models["ta"], frame, config, peak, serve_too=True)
        if args.smollm2:
            rows += measure("smollm2-135m", args.smollm2, frame.head(args.texts // 4),
                            config.model_copy(update={"batch_size": 16}), peak, serve_too=False)
    finally:
        serve.shutdown()
        ray.shutdown()
    rate = {(r["model"], r["op"], r["path"]): r for r in rows}
    over = {op: round(rate[("synthetic-ta", op, "serve")]["rows_per_s"] / rate[("synthetic-ta", op, "direct")]["rows_per_s"], 3)
            for op in ("score", "sample")}
    roofline = {f"{m} {op} {path}": r["over_roofline"] for (m, op, path), r in rate.items()}
    summary = {
        "cpus": os.cpu_count(), "torch_threads": config.torch_threads, "matmul_gflops": round(peak / 1e9, 2),
        "serve_over_direct": min(over.values()), "serve_over_direct_by_op": over, "roofline": roofline,
        "results": rows, "command": "python -m bench.inference.bench" + (" --smollm2 ..." if args.smollm2 else ""),
    }
    for op, value in over.items():
        print(f"serve / direct, {op}: {value:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
