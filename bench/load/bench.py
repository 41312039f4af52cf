"""Load: N questions through the run's teacher calls and TA scoring on a local Ray cluster.

Each size is one real `tadistill run` in its own process, method `ta_teacher_only`: the
corpus of N synthetic questions, N teacher requests to the simulated teacher on Serve
(Ray Data actors, the cluster-wide budget), the TA scoring all N outputs on Serve, and
training on the N weighted rows. While it runs, the resident memory of the driver and of
every process it started (Ray's GCS, raylet, workers, Serve replicas) is sampled; then the
row count of every step is read back from the manifest and the Parquet files.

Printed side by side: rows per step, seconds, peak RSS of the driver and of all processes,
and the ratio of the largest size to the smallest. Results go to JSON.

    .venv/bin/python -m bench.load.bench [--sizes 2000 10000] [--out bench/results/load]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MODEL_CACHE = REPO / ".cache" / "tadistill"


def run_config(questions: int, run_dir: Path, http_port: int, train_steps: int | None = None) -> dict:
    """A run whose every row goes through the teacher and the TA; the test split stays small.
    train_steps caps the final training (null: one pass over every row)."""
    config = {
        "run_dir": str(run_dir), "method": "ta_teacher_only", "models": {"cache_dir": str(MODEL_CACHE)},
        "data": {"synthetic": {"pool_size": questions, "test_size": 40}},
        "budget": {"requests": questions},
        "teacher": {"concurrency": 64, "http_port": http_port},
        "inference": {"batch_size": 64, "max_batch_size": 4},
        # The last weights, as when the committed numbers were measured: the probe the default's final
        # pick answers does not grow with the pool, which is what this bench scales.
        "train": {"launcher": "local", "strategy": "ddp", "num_workers": 1, "epochs": 1,
                  "global_batch_size": 64, "micro_batch_size": 64, "final_pick": "last"},
        "eval": {"batch_size": 40},
    }
    if train_steps is not None:
        config["train"]["steps"] = train_steps
    return config


class MemoryWatch:
    """Peak RSS of a process and of its whole tree, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.5):
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peak_driver = self.peak_tree = self.peak_processes = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psutil

        started = time.monotonic()
        while not self._stop.wait(self.every):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                total += rss
                if proc.pid == self.root.pid:
                    self.peak_driver = max(self.peak_driver, rss)
            self.peak_tree = max(self.peak_tree, total)
            self.peak_processes = max(self.peak_processes, len(procs))
            self.samples.append((round(time.monotonic() - started, 1), total))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def row_counts(run_dir: Path) -> dict[str, int]:
    """Rows of every step's output, read back from the files, not from the manifest."""
    import pyarrow.parquet as pq

    from tadistill.artifacts import FINAL, ROWS, WARMUP, bought, picks, train_rows, trusted

    def rows(artifact) -> int:
        return pq.read_metadata(run_dir / artifact).num_rows

    def table(artifact, columns):
        return pq.read_table(run_dir / artifact, columns=columns).to_pandas()

    corpus = table(ROWS, ["split"])
    teacher = table(bought(WARMUP), ["id"])
    trust = table(trusted(WARMUP), ["id", "trust_value"])
    return {
        "pool": int((corpus["split"] == "train").sum()),
        "picked": rows(picks(WARMUP)),
        "teacher_outputs": len(teacher), "teacher_unique_ids": int(teacher["id"].nunique()),
        "ta_scored": int(trust["trust_value"].notna().sum()), "trust_unique_ids": int(trust["id"].nunique()),
        "trained": rows(train_rows(FINAL)),
    }


def run_size(questions: int, out: Path, http_port: int = 8761, train_steps: int | None = None) -> dict:
    """One whole run of `questions` questions; its rows, seconds and peak memory."""
    run_dir = out / f"q{questions}" / "run"
    config_path = out / f"q{questions}" / "config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(run_config(questions, run_dir, http_port, train_steps)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    with open(out / f"q{questions}" / "run.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "tadistill.cli", "run", str(config_path)], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        with MemoryWatch(driver.pid) as memory:
            driver.wait()
    seconds = time.monotonic() - started
    if driver.returncode != 0:
        raise RuntimeError(f"the {questions}-question run failed; see {out / f'q{questions}' / 'run.log'}")
    steps = json.loads((run_dir / "manifest.json").read_text())["steps"]
    return {
        "questions": questions, "seconds": round(seconds, 1),
        "step_seconds": {name: entry.get("seconds") for name, entry in steps.items()},
        "rows": row_counts(run_dir),
        "peak_rss_driver_mb": round(memory.peak_driver / 2**20),
        "peak_rss_all_processes_mb": round(memory.peak_tree / 2**20),
        "most_processes": memory.peak_processes,
        "rss_samples_mb": [(t, round(b / 2**20)) for t, b in memory.samples[:: max(1, len(memory.samples) // 60)]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "load"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    results = [run_size(n, out) for n in args.sizes]
    small, large = results[0], results[-1]
    print(f"{'questions':>10} {'seconds':>8} {'teacher':>8} {'TA-scored':>9} {'trained':>8} "
          f"{'driver MB':>9} {'all MB':>7} {'procs':>5}")
    for r in results:
        rows = r["rows"]
        print(f"{r['questions']:>10} {r['seconds']:>8} {rows['teacher_outputs']:>8} {rows['ta_scored']:>9} "
              f"{rows['trained']:>8} {r['peak_rss_driver_mb']:>9} {r['peak_rss_all_processes_mb']:>7} "
              f"{r['most_processes']:>5}")
    ratios = {
        "questions": large["questions"] / small["questions"],
        "seconds": large["seconds"] / small["seconds"],
        "peak_rss_driver": large["peak_rss_driver_mb"] / small["peak_rss_driver_mb"],
        "peak_rss_all_processes": large["peak_rss_all_processes_mb"] / small["peak_rss_all_processes_mb"],
    }
    print("ratio largest/smallest: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    (out / "results.json").write_text(json.dumps({"runs": results, "ratios": ratios}, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
