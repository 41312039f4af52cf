"""Issue 38, item 5: trust that costs nothing when the teacher is right.

Two pairs, each differing in one setting, in world A (tadistill/resources/worlds/shaped.yaml) at budget 300,
with a teacher that is always right (error 0) and one wrong 40% of the time (error 0.4):

- `full` (trust.mode 'weight': each output's whole loss scaled by its trust) against
  `full_answer_weight` (the method both_answer_weight: only the answer's tokens scaled, the
  rationale at full weight). Hoped: no loss at error 0, where 'weight' only costs;
- `none` (train.loss 'nll') against `none_gce` (generalized cross-entropy, q = train.gce_q 0.7):
  a soft loss in place of trust, no TA needed. Hoped: a gain at error 0.4, none lost at 0.

    .venv/bin/python -m bench.quality.trust_modes               # run (a rerun resumes), then the summary
    .venv/bin/python -m bench.quality.trust_modes --seeds 0 1   # fewer seeds
    .venv/bin/python -m bench.quality.trust_modes --threads 1 --seeds 3 4 5   # one of two processes
    .venv/bin/python -m bench.quality.trust_modes --summary     # only the summary of what is recorded
    .venv/bin/python -m bench.quality.trust_modes --check       # load every run's config; run nothing

Runs go through bench.quality.bench (its settings, and its sharing of a seed's first steps between
methods: full_answer_weight starts from a copy of full's run, none_gce from none's), seed-major
over both cells, so a grid cut short still pairs. One JSON line a run in RESULTS; the summary is
each pair's mean paired accuracy difference per cell, with its paired-bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.quality import bench

CELLS = [("shaped", 0.0, 300), ("shaped", 0.4, 300)]  # (world, teacher error, budget)
PAIRS = [("full_answer_weight", "full"), ("none_gce", "none")]  # (variant, its baseline)
METHODS = [method for pair in PAIRS for method in pair]
SEEDS = list(range(10))
RESULTS = bench.REPO / "docs" / "results" / "quality_trust_modes.jsonl"


def run_overrides(world: str, method: str) -> list[str]:
    """A run's overrides as bench.run_seed builds them, less the recorded teacher and the seed."""
    preset, settings, _ = bench.VARIANTS.get(method, (method, [], ()))
    return [*bench._world_overrides(world), *bench.SETTINGS, *bench.TRAINING, f"method={preset}", *settings]


def check(extra: list[str]) -> None:
    """Every run's config loads; each pair's differences are printed (one setting, and the method's
    name where the variant is a method of its own). Nothing runs."""
    from tadistill.config import load_config

    for world, rate, budget in CELLS:
        configs = {m: load_config(None, [*run_overrides(world, m), f"budget.requests={budget}",
                                         f"teacher.synthetic.error_rate={rate}", *extra]) for m in METHODS}
        for variant, baseline in PAIRS:
            differences = _differences(configs[variant].model_dump(), configs[baseline].model_dump())
            print(f"{world} error {rate:g}: {variant} against {baseline}: " + "; ".join(differences))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """'key: a's value vs b's' for each dotted key where two config dumps differ."""
    out = []
    for key in a:
        if isinstance(a[key], dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a[key] != b.get(key):
            out.append(f"{prefix}{key}: {a[key]!r} vs {b.get(key)!r}")
    return out


def run(seeds: list[int], out: Path, results: Path, extra: list[str]) -> None:
    bench._start_ray()
    done = bench.recorded_runs(results)
    for seed in seeds:
        for world, rate, budget in CELLS:
            bench.run_seed(world, rate, budget, seed, METHODS, out, done, results, extra)


def summary(results: Path) -> None:
    from bench.quality import stats

    if not results.exists():
        print(f"nothing recorded yet in {results}")
        return
    runs = stats.load(results)
    for world, rate, budget in CELLS:
        cell = runs[(runs["world"] == world) & (runs["error_rate"] == rate) & (runs["budget"] == budget)]
        for variant, baseline in PAIRS:
            by_seed = cell[cell["method"].isin([variant, baseline])].pivot_table(
                index=["arithmetic", "seed"], columns="method", values="accuracy").dropna()
            if by_seed.empty or set(by_seed.columns) != {variant, baseline}:
                print(f"{world} error {rate:g}: {variant} - {baseline}: no paired seeds yet")
                continue
            c = stats.paired(by_seed[variant].to_numpy(), by_seed[baseline].to_numpy())
            print(f"{world} error {rate:g}: {variant} - {baseline} = {100 * c['abs']:+.1f} points "
                  f"[{100 * c['abs_ci'][0]:+.1f}, {100 * c['abs_ci'][1]:+.1f}] over {c['n']} seeds "
                  f"({by_seed[baseline].mean():.3f} -> {by_seed[variant].mean():.3f}; wins {c['wins']:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--set", action="append", default=[], help="key=value override for every run")
    parser.add_argument("--results", default=str(RESULTS), help="the JSON-lines file runs are appended to")
    parser.add_argument("--out", default=str(bench.REPO / "bench" / "results" / "quality"), help="run directories")
    parser.add_argument("--summary", action="store_true", help="only summarise what RESULTS holds")
    parser.add_argument("--check", action="store_true", help="load every run's config and run nothing")
    bench.add_threads_option(parser)
    args = parser.parse_args()
    bench.use_threads(args.threads)
    results = Path(args.results)
    if args.check:
        check(args.set)
        return
    if not args.summary:
        results.parent.mkdir(parents=True, exist_ok=True)
        run(args.seeds, Path(args.out), results, args.set)
    summary(results)


if __name__ == "__main__":
    main()
