"""How much the synthetic-model cache saves: a cold build against a cached call, side by side.

    .venv/bin/python -m bench.model_cache.bench [--out bench/results/model_cache.json]

Builds the embedded student and TA into an empty temporary cache (minutes on 2 cores),
then asks for them again, and prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tadistill.synthetic.models import ensure_synthetic_models


def measure() -> dict:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        ensure_synthetic_models(cache)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        ensure_synthetic_models(cache)
        cached = time.perf_counter() - started
    return {"cold_build_s": round(cold, 2), "cached_call_s": round(cached, 4), "ratio": round(cold / cached, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results/model_cache.json")
    args = parser.parse_args()
    result = measure()
    print(f"cold build {result['cold_build_s']} s, cached call {result['cached_call_s']} s: "
          f"the cache is {result['ratio']}x faster")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
