"""Capture tests/data/one_round_pin.json with the code that defines what one round must compute:
the two-stage code before the round layout (commit 2c4be65). The runs depend on this machine's
arithmetic (models are built and trained here), so the pin is captured per arithmetic, keyed by
`arithmetic_key()` in tests/test_plan.py, and the test compares against the entry for its machine.
The package builds every synthetic model with 1 thread (synthetic/models.py, BUILD_THREADS); the
older code built with the caller's count, so this script builds them with 1 thread itself, into a
cache of its own, and the runs read those.

    git worktree add /tmp/oldcode 2c4be65
    PYTHONPATH=/tmp/oldcode .venv/bin/python tests/data/capture_one_round_pin.py /tmp/pin-capture

Reads either layout: the old one (picks/stage1, stage2/train_rows, train_stage2) or the rounds one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
PIN = Path(__file__).parent / "one_round_pin.json"
METHODS = ["full", "none", "ta_teacher_only", "random", "sc_filter"]


def main(out: Path) -> None:
    import ray
    import torch

    import tadistill
    from tadistill.config import load_config
    from tadistill.corpus.synthetic import synthetic_splits
    from tadistill.pipeline import run_pipeline
    from tadistill.synthetic.models import ensure_synthetic_models
    from tadistill.synthetic.teacher_server import TeacherProfile, write_teacher_records

    sys.path.insert(0, str(REPO))
    from bench.quality.machine import arithmetic_key
    from tests.data.one_round_world import WORLD, run_overrides

    print(f"capturing with {tadistill.__file__}", flush=True)
    ray.init(num_cpus=4, include_dashboard=False)
    cache = out / "models"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the package's builds do
    ensure_synthetic_models(cache)
    torch.set_num_threads(threads)
    base = load_config(None, WORLD)
    records = write_teacher_records(synthetic_splits(base.data)["train"],
                                    TeacherProfile.from_config(base.teacher.synthetic, base.data.synthetic),
                                    out / "teacher.jsonl")
    pins = {}
    for method in METHODS:
        run_dir = out / method
        run_pipeline(load_config(None, run_overrides(cache, records, method, run_dir)))
        pins[method] = measure(run_dir)
    stored = json.loads(PIN.read_text()) if PIN.exists() else {}
    stored = stored if "by_arithmetic" in stored else {"by_arithmetic": {}}
    stored["by_arithmetic"][arithmetic_key()] = pins
    PIN.write_text(json.dumps(stored, indent=1) + "\n")
    print(f"wrote {PIN} for arithmetic {arithmetic_key()}")


def measure(run_dir: Path) -> dict:
    steps = json.loads((run_dir / "manifest.json").read_text())["steps"]
    if "final.train" in steps:  # the rounds layout
        final, rows_path = steps["final.train"], run_dir / "final/train_rows.parquet"
        purchases = ["warmup", "round1"] if "round1.select" in steps else ["warmup"]
    else:  # the two-stage layout
        two = "train_stage2" in steps
        final = steps["train_stage2" if two else "train_stage1"]
        rows_path = run_dir / ("stage2" if two else "stage1") / "train_rows.parquet"
        purchases = ["stage1", "stage2"] if two else ["stage1"]
    rows = pd.read_parquet(rows_path)
    return {
        "accuracy": steps["evaluate"]["accuracy"], "final_loss": round(final["final_loss"], 6),
        "optimizer_steps": final["optimizer_steps"],
        "picks": [pd.read_parquet(run_dir / f"picks/{p}.parquet")["id"].tolist() for p in purchases],
        "train_rows": sorted([i, round(float(w), 6)] for i, w in zip(rows["id"], rows["weight"])),
    }


if __name__ == "__main__":
    main(Path(sys.argv[1]))
