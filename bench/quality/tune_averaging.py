"""Choose train.start_weight_share (weight averaging with the base student) on a validation
split, from finished runs, without training again: each run's final student is averaged with the
base student at every share and answers the run's test split (validation, for tuning runs).

    .venv/bin/python -m bench.quality.tune_averaging /tmp/tune/out --shares 0 0.3 0.5 0.7 \
        --results bench/quality/tune_averaging.jsonl

Share 0 is the run as trained (a check: it must give the accuracy the run recorded). One line per
(run, share) is appended to the results file; the summary prints the mean accuracy per method and
share, and the share with the best mean over methods (the same share for every method).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd


def evaluate_shares(run_dir: Path, shares: list[float]) -> list[dict]:
    from tadistill.artifacts import ROWS
    from tadistill.config import Config
    from tadistill.context import RunContext
    from tadistill.evaluate import accuracy, answer_test_set
    from tadistill.rundir import RunDir
    from tadistill.services import Services
    from tadistill.train.averaging import average_with_start

    config = Config.model_validate_json((run_dir / "config.json").read_text())
    ctx = RunContext(config=config, run_dir=RunDir(run_dir), services=Services(config))
    rows = ctx.run_dir.read_table(ROWS)
    test = rows[rows["split"] == config.data.test_split]
    out = []
    try:
        for share in shares:
            with tempfile.TemporaryDirectory() as tmp:
                model = Path(tmp) / "model"
                shutil.copytree(run_dir / "final" / "model", model)
                if share > 0:
                    average_with_start(model, ctx.models()["student"], share)
                measured = accuracy(answer_test_set(test, str(model), config.eval, ctx.executor))
            out.append({"run": str(run_dir), "method": config.method, "seed": config.seed, "share": share,
                        "split": config.data.test_split, "accuracy": measured["accuracy"]})
            print(f"  {run_dir.parent.name}/{run_dir.name} share {share}: {measured['accuracy']:.3f}", flush=True)
    finally:
        ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the benchmark's --out folder of the tuning runs")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    parser.add_argument("--results", default="bench/quality/tune_averaging.jsonl")
    args = parser.parse_args()
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    results = Path(args.results)
    done = set()
    if results.exists():
        done = {(r["run"], r["share"]) for r in map(json.loads, results.read_text().splitlines()) if r}
    for run_dir in sorted(Path(args.out).glob("runs/*/seed*/*")):
        if not (run_dir / "final" / "model").exists() or not (run_dir / "eval").exists():
            continue  # base (no final student) or not finished
        todo = [s for s in args.shares if (str(run_dir), s) not in done]
        if todo:
            with results.open("a") as handle:
                for record in evaluate_shares(run_dir, todo):
                    handle.write(json.dumps(record) + "\n")
    frame = pd.DataFrame([json.loads(line) for line in results.read_text().splitlines() if line.strip()])
    table = frame.pivot_table(index="method", columns="share", values="accuracy", aggfunc="mean")
    print(table.round(3).to_string())
    means = table.mean(axis=0)
    print(f"mean over methods: {means.round(3).to_dict()}; best share {means.idxmax()}")


if __name__ == "__main__":
    main()
