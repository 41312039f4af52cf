"""Teacher client throughput against the test OpenAI server with 100 ms injected latency.

Sequential, then at concurrency 8, 32 and 128: requests per second and the ratio to the
ideal rate (concurrency / latency). The server runs in its own process, as a real endpoint
would; the client is tadistill's asyncio TeacherClient with its cache, ledger and budget.
Each level is timed after two untimed warm-up requests (imports, first connection). Then
teacher.rpm is checked: the time a limited purchase takes against the least the limit allows.

    .venv/bin/python -m bench.teacher.bench [--latency 0.1] [--out bench/results/teacher.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SERVER = """
import sys, time
from tests.teacher.openai_server import OpenAITestServer
server = OpenAITestServer(latency=float(sys.argv[1])).start()
print(server.base_url, flush=True)
time.sleep(3600)
"""


def _start_server(latency: float):
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc, proc.stdout.readline().strip()


def _run(base_url: str, concurrency: int, requests: int, cache_dir: Path, rpm: int | None = None) -> float:
    from tadistill.config import TeacherConfig
    from tadistill.tasks.prompts import SYSTEM_PROMPTS
    from tadistill.teacher.budget import Budget
    from tadistill.teacher.cache import ResponseCache
    from tadistill.teacher.client import TeacherClient

    config = TeacherConfig(source="openai", base_url=base_url, model="bench", api_key_env="TADISTILL_BENCH_KEY",
                           concurrency=concurrency, rpm=rpm)
    rows = pd.DataFrame({"id": [f"r{i}" for i in range(requests)],
                         "question": [f"bench question {concurrency}-{i}" for i in range(requests)]})
    client = TeacherClient(config, base_url, ResponseCache(cache_dir), SYSTEM_PROMPTS["number"])
    # Untimed warm-up: the first request of a process pays for imports and connection set-up.
    warm = pd.DataFrame({"id": ["w0", "w1"], "question": [f"warm-up {concurrency}-{i}" for i in range(2)]})
    client.buy(warm, Budget(2), progress=False)
    started = time.perf_counter()
    bought, report = client.buy(rows, Budget(requests), progress=False)
    seconds = time.perf_counter() - started
    assert report.sent == requests == len(bought)
    return seconds


def _rate_limit(base_url: str, cache_dir: Path, rpm: int = 600, extra: int = 50) -> dict:
    """teacher.rpm holds: a leaky bucket of `rpm` lets a burst of rpm through, then rpm/60 a
    second, so rpm + extra requests cannot finish before extra / (rpm / 60) seconds."""
    seconds = _run(base_url, 32, rpm + extra, cache_dir, rpm=rpm)
    floor = extra / (rpm / 60)
    print(f"rpm {rpm}: {rpm + extra} requests in {seconds:.1f} s; the limit allows no less than {floor:.1f} s "
          f"(floor / actual {floor / seconds:.2f}, at most 1 when the limit holds)")
    return {"rpm": rpm, "requests": rpm + extra, "seconds": round(seconds, 2), "floor_s": floor,
            "floor_over_actual": round(floor / seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal duration of each level")
    parser.add_argument("--out", default=str(REPO / "bench/results/teacher.json"))
    args = parser.parse_args()
    os.environ.setdefault("TADISTILL_BENCH_KEY", "sk-bench")
    proc, base_url = _start_server(args.latency)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (1, 8, 32, 128):
                ideal = concurrency / args.latency
                requests = max(10, int(ideal * args.seconds))
                seconds = _run(base_url, concurrency, requests, Path(tmp) / f"c{concurrency}")
                rate = requests / seconds
                results.append({"concurrency": concurrency, "requests": requests, "seconds": round(seconds, 3),
                                "requests_per_s": round(rate, 1), "ideal_per_s": round(ideal, 1),
                                "ratio_to_ideal": round(rate / ideal, 3)})
                print(f"concurrency {concurrency:>3}: {rate:7.1f} req/s, ideal {ideal:6.1f}, ratio {rate / ideal:.3f}")
            rate_limit = _rate_limit(base_url, Path(tmp) / "rpm")
    finally:
        proc.kill()
    out = {"latency_s": args.latency, "cpus": os.cpu_count(), "results": results, "rate_limit": rate_limit}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
