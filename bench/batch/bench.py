"""Issue 39: at a fixed money budget, what buying through the Batch API gives the student.

    .venv/bin/python -m bench.batch.bench [--seeds 0 1 2 3 4]

World A (tadistill/resources/worlds/shaped.yaml) at teacher error 0.4, method `none`, the quality
benchmark's training settings. The simulated teacher answers on Ray Serve over HTTP as an
OpenAI-compatible endpoint, priced at 1 per million prompt and completion tokens (its tokens are
words); a local Batch API server (tadistill/synthetic/batch_server.py) executes batch lines
against the same endpoint. Per seed:

- `sync`: 300 requests bought one at a time; what they cost is the seed's money budget;
- `batch`: the same money (`budget.cost`) bought through the Batch API at half the price.

Both final students train the same optimizer steps (train.steps: 20 epochs of 300 outputs in
batches of 16), so they differ only in how many outputs the money bought. Records (one JSON line
a run, resumable) go to bench/results/batch/runs.jsonl; the summary, with the paired bootstrap CI
of batch minus sync over seeds, to docs/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.quality.bench import SETTINGS, TRAINING, seed_overrides
from bench.quality.stats import paired

REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "tadistill" / "resources" / "worlds" / "shaped.yaml"
OUT = REPO / "bench" / "results" / "batch"
SUMMARY = REPO / "docs" / "results" / "batch.json"
MODEL = "teacher-a"
REQUESTS = 300
STEPS = 20 * (REQUESTS // 16)  # the benchmark's 20 epochs of the synchronous purchase
PORT = 8741


def _config(way: str, seed: int, url: str, money: float | None):
    from tadistill.config import load_config

    budget = [f"budget.requests={REQUESTS}"] if way == "sync" else ["budget.requests=3000", f"budget.cost={money}"]
    return load_config(WORLD, [
        "method=none", "teacher.synthetic.error_rate=0.4", *TRAINING, *SETTINGS, *seed_overrides(seed),
        f"train.steps={STEPS}", f"run_dir={OUT / f'seed{seed}' / way}",
        "models.cache_dir=" + str(REPO / ".cache" / "tadistill"),
        "teacher.source=openai", f"teacher.base_url={url}", f"teacher.model={MODEL}", "teacher.api_key_env=TADISTILL_BENCH_KEY",
        "teacher.concurrency=8", "teacher.workers=1", f"teacher.batch.enabled={way == 'batch'}", "teacher.batch.poll_s=0.5",
        f"budget.prices={{{MODEL}: {{prompt: 1, completion: 1}}}}", *budget,
    ])


def _record(way: str, seed: int, ctx, seconds: float) -> dict:
    steps = ctx.run_dir.manifest()["steps"]
    buy = steps["warmup.buy"]
    return {"way": way, "seed": seed, "accuracy": steps["evaluate"]["accuracy"], "outputs": buy["rows"],
            "cost": buy["cost"], "optimizer_steps": steps["final.train"]["optimizer_steps"],
            "batches": len(buy.get("batch", {}).get("batches", [])), "seconds": round(seconds, 1)}


def summarise(records: list[dict]) -> dict:
    by = {(r["seed"], r["way"]): r for r in records}
    seeds = sorted(s for s, w in by if w == "sync" and (s, "batch") in by)
    sync = np.array([by[(s, "sync")]["accuracy"] for s in seeds])
    batch = np.array([by[(s, "batch")]["accuracy"] for s in seeds])
    ratio = [by[(s, "batch")]["outputs"] / by[(s, "sync")]["outputs"] for s in seeds]
    return {"command": "python -m bench.batch.bench", "world": "shaped", "error_rate": 0.4, "method": "none",
            "requests_sync": REQUESTS, "optimizer_steps": STEPS, "seeds": seeds,
            "outputs_ratio": {"mean": float(np.mean(ratio)), "min": float(np.min(ratio)) if ratio else None},
            "money": {s: by[(s, "sync")]["cost"] for s in seeds},
            "sync_accuracy": float(sync.mean()) if seeds else None, "batch_accuracy": float(batch.mean()) if seeds else None,
            "batch_vs_sync": paired(batch, sync) if len(seeds) >= 2 else None, "runs": records}


def main() -> None:
    import os

    import ray

    from tadistill.pipeline import run_pipeline
    from tadistill.synthetic.batch_server import BatchServer
    from tadistill.synthetic.teacher_server import TeacherProfile, start_teacher

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    os.environ.setdefault("TADISTILL_BENCH_KEY", "sk-local-simulated-teacher")
    OUT.mkdir(parents=True, exist_ok=True)
    records_path = OUT / "runs.jsonl"
    records = [json.loads(line) for line in records_path.read_text().splitlines()] if records_path.exists() else []
    done = {(r["seed"], r["way"]) for r in records}
    ray.init(address="local", num_cpus=4, include_dashboard=False)
    base = _config("sync", 0, "http://unused/v1", None)
    url = start_teacher(MODEL, TeacherProfile.from_config(base.teacher.synthetic, base.data.synthetic), PORT)
    with BatchServer(url) as batches:
        for seed in args.seeds:
            for way in ("sync", "batch"):
                if (seed, way) in done:
                    continue
                money = next((r["cost"] for r in records if r["seed"] == seed and r["way"] == "sync"), None)
                started = time.time()
                ctx = run_pipeline(_config(way, seed, url if way == "sync" else batches.base_url, money))
                records.append(_record(way, seed, ctx, time.time() - started))
                with records_path.open("a") as out:
                    out.write(json.dumps(records[-1]) + "\n")
                print(json.dumps(records[-1]), flush=True)
    SUMMARY.write_text(json.dumps(summarise(records), indent=2) + "\n")
    print(json.dumps({k: v for k, v in summarise(records).items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
