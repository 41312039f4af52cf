"""TA scoring throughput through Ray Serve: batched against one request per text, and one
replica against two. CPU, the tiny synthetic TA, one run, ratios printed and written as JSON.

    .venv/bin/python -m bench.inference.bench [--texts 2048] [--out bench/results/inference.json]

- one request per text: every text is its own request to the TAScorer deployment, with
  Serve's request batching off (max_batch_size 1), 16 in flight from the driver;
- batched: the pipeline's path, Ray Data batches of 64 texts a request, serve.batch merging
  up to 4 requests into one forward pass;
- the batched path again with 2 replicas.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _texts(n: int):
    import pandas as pd

    from tadistill.synthetic.problems import generate_problems, gold_solution

    problems = generate_problems(n, seed=2024, min_steps=2, max_steps=5)
    return pd.DataFrame({"id": [f"t{i:04d}" for i in range(n)], "question": [p.question() for p in problems],
                         "text": [gold_solution(p) for p in problems]})


def _one_request_per_text(frame, ta_path: str, config) -> float:
    from ray import serve

    from tadistill.inference.deployments import SCORER_APP, deploy_scorer
    from tadistill.tasks.prompts import student_prompt, student_target

    deploy_scorer(ta_path, config.model_copy(update={"max_batch_size": 1}))
    handle = serve.get_deployment_handle("TAScorer", app_name=SCORER_APP)
    pairs = [([student_prompt(q)], [student_target(t)]) for q, t in zip(frame["question"], frame["text"])]
    handle.score.remote(*pairs[0]).result()  # warm
    started = time.perf_counter()
    in_flight, done = [], 0
    for prompts, outputs in pairs:
        in_flight.append(handle.score.remote(prompts, outputs))
        if len(in_flight) >= 16:
            in_flight.pop(0).result()
            done += 1
    for response in in_flight:
        response.result()
    seconds = time.perf_counter() - started
    serve.delete(SCORER_APP)
    return seconds


def _batched(frame, ta_path: str, config) -> float:
    from ray import serve

    from tadistill.inference.deployments import SCORER_APP, deploy_scorer
    from tadistill.inference.drive import score_texts

    deploy_scorer(ta_path, config)
    score_texts(frame.head(config.batch_size), config.batch_size, 1)  # warm
    started = time.perf_counter()
    scored = score_texts(frame, config.batch_size, num_blocks=8)
    seconds = time.perf_counter() - started
    assert len(scored) == len(frame)
    serve.delete(SCORER_APP)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--out", default=str(REPO / "bench/results/inference.json"))
    args = parser.parse_args()
    import ray
    from ray import serve

    from tadistill.config import InferenceConfig
    from tadistill.synthetic.models import ensure_synthetic_models

    ta_path = ensure_synthetic_models(REPO / ".cache" / "tadistill")["ta"]
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    serve.start(http_options={"host": "127.0.0.1", "port": 8751})
    frame = _texts(args.texts)
    config = InferenceConfig(batch_size=64, max_batch_size=4)
    rows = []
    try:
        for name, run, cfg in (
            ("one request per text", _one_request_per_text, config),
            ("batched, 1 replica", _batched, config),
            ("batched, 2 replicas", _batched, config.model_copy(update={"replicas": 2})),
        ):
            seconds = run(frame, ta_path, cfg)
            rows.append({"mode": name, "texts": len(frame), "seconds": round(seconds, 2),
                         "texts_per_s": round(len(frame) / seconds, 1)})
            print(f"{name:>22}: {len(frame) / seconds:7.1f} texts/s")
    finally:
        serve.shutdown()
        ray.shutdown()
    rate = {r["mode"]: r["texts_per_s"] for r in rows}
    ratios = {
        "batched / one request per text": round(rate["batched, 1 replica"] / rate["one request per text"], 2),
        "2 replicas / 1 replica": round(rate["batched, 2 replicas"] / rate["batched, 1 replica"], 2),
    }
    for name, value in ratios.items():
        print(f"{name}: {value}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpus": os.cpu_count(), "results": rows, "ratios": ratios}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
