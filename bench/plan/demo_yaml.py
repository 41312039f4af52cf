"""Does `tadistill plan configs/demo.yaml` predict the demo config's step times? Recomputed from the
run directories of finished runs of configs/demo.yaml at several budgets (Serve, Ray Train with
DeepSpeed, the synthetic teacher, on this machine), each made with

    .venv/bin/tadistill run configs/demo.yaml budget.requests=B run_dir=/tmp/planB

and compared, step by step and in all, with what the plan of that budget says:

  - held out: rates calibrated on the runs at the other budget only (`--calibrate` them), the test;
  - committed: the rates committed for demo.yaml's kind (tadistill/resources/plan_rates/rates_cpu_2core_serve.json),
    what `tadistill plan` uses with no run of its kind at hand (say whether they were fitted on
    these very runs: then it is no test);
  - local kind: the rates committed for local launchers (rates_cpu_2core_local.json, before issue
    37 the one committed file, taken for any config with no run at hand), for the record of what
    rates of another kind give.

    .venv/bin/python -m bench.plan.demo_yaml [RUN_DIR ...] [--out bench/plan/demo_yaml]

writes OUT.json and OUT.md. With no RUN_DIR it reads the measured runs kept in
bench/plan/demo_yaml_runs/ (each run's manifest.json and config.json, copied from /tmp/planB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "demo.yaml"
COMMITTED = REPO / "cluster" / "plan" / "rates_cpu_2core_serve.json"
LOCAL_KIND = REPO / "cluster" / "plan" / "rates_cpu_2core_local.json"
OUT = REPO / "bench" / "plan" / "demo_yaml"
KEPT = Path("bench") / "plan" / "demo_yaml_runs"  # relative: the record names them as a reader finds them


def _budget(run_dir: Path) -> int:
    return json.loads((run_dir / "config.json").read_text())["budget"]["requests"]


def _planned(budget: int, rates) -> dict[str, float]:
    """Seconds of each step of `tadistill plan configs/demo.yaml budget.requests=B` (the CLI's shape)."""
    from tadistill.capacity import Shape, plan_run
    from tadistill.config import load_config

    plan = plan_run(load_config(CONFIG, [f"budget.requests={budget}"]), rates, Shape())
    return {s.step: s.seconds for s in plan.steps}


def _ratio(predicted: float, measured: float):
    return round(predicted / measured, 2) if measured else None


def compare(run_dir: Path, others: list[Path]) -> dict:
    """One run's measured steps beside the three plans of its budget."""
    from tadistill.capacity import Rates, calibrate

    budget = _budget(run_dir)
    measured = {step: entry["seconds"] for step, entry in
                json.loads((run_dir / "manifest.json").read_text())["steps"].items() if "seconds" in entry}
    plans = {"held_out": _planned(budget, calibrate(others)) if others else {},
             "committed": _planned(budget, Rates.load(COMMITTED)),
             "local_kind": _planned(budget, Rates.load(LOCAL_KIND))}
    steps = []
    for step, seconds in _planned(budget, Rates.load(COMMITTED)).items():
        row = {"step": step, "measured_s": round(measured.get(step, 0.0), 1)}
        for name, plan in plans.items():
            if plan:
                row[f"{name}_s"] = round(plan[step], 1)
                row[f"{name}_ratio"] = _ratio(plan[step], measured.get(step, 0.0))
        steps.append(row)
    total = {"measured_s": round(sum(r["measured_s"] for r in steps), 1),
             "measured_all_steps_s": round(sum(measured.values()), 1)}
    for name, plan in plans.items():
        if plan:
            total[f"{name}_s"] = round(sum(plan.values()), 1)
            total[f"{name}_ratio"] = _ratio(sum(plan.values()), total["measured_s"])
    return {"run_dir": str(run_dir), "budget": budget, "held_out_calibrated_on": [str(o) for o in others],
            "steps": steps, "total": total}


def _cell(row: dict, name: str) -> str:
    if f"{name}_s" not in row:
        return "- | -"
    ratio = row[f"{name}_ratio"]
    return f"{row[f'{name}_s']:.1f} | {'-' if ratio is None else f'{ratio:.2f}'}"


def markdown(record: dict) -> str:
    lines = ["# `tadistill plan configs/demo.yaml` against measured runs", "",
             f"Recomputed by `{record['command']}`. Ratio: predicted / measured seconds. Held out: rates "
             "calibrated on the runs at the other budget only (the test). Committed: "
             "tadistill/resources/plan_rates/rates_cpu_2core_serve.json, "
             f"{record['committed_source']}; where they were fitted on these runs they are in-sample, a check of "
             "the fit and not of prediction. Local kind: tadistill/resources/plan_rates/rates_cpu_2core_local.json (local "
             "launchers, another kind of config).", ""]
    for run in record["runs"]:
        lines += [f"## budget.requests={run['budget']} ({run['run_dir']})", "",
                  f"Held out: calibrated on {', '.join(run['held_out_calibrated_on']) or 'nothing'}.", "",
                  "| step | measured s | held out s | ratio | committed s | ratio | local kind s | ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in [*run["steps"], {"step": "**total**", **run["total"]}]:
            lines.append(f"| {row['step']} | {row['measured_s']:.1f} | {_cell(row, 'held_out')} | "
                         f"{_cell(row, 'committed')} | {_cell(row, 'local_kind')} |")
        every = run["total"]["measured_all_steps_s"]
        lines += ["", f"All measured steps (those the plan does not model too): {every} s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="run directories of finished runs of configs/demo.yaml "
                                                "(default: those kept in bench/plan/demo_yaml_runs/)")
    parser.add_argument("--out", default=str(OUT), help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    from tadistill.capacity import Rates

    runs = sorted((Path(r) for r in args.runs) if args.runs else (REPO / KEPT).iterdir(), key=_budget)
    runs = [r.relative_to(REPO) if r.is_relative_to(REPO) else r for r in runs]
    record = {"command": "python -m bench.plan.demo_yaml " + " ".join(str(r) for r in runs),
              "committed_source": Rates.load(COMMITTED).source,
              # Held out: each run predicted from the runs at other budgets only.
              "runs": [compare(r, [o for o in runs if _budget(o) != _budget(r)]) for r in runs]}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record) + "\n")
    print(markdown(record))


if __name__ == "__main__":
    main()
