"""Issue 38: choose `auto` among the pre-registered candidates on the development draw, by the
rule written in README.md here before any development run:

    g(c, w) = mean over seeds of (acc_c - acc_none) / acc_none, paired by seed, on the validation split;
    auto = the candidate with the largest worst-world gain, min over w of g(c, w); candidates within
    0.5 points of it are split by the mean over worlds of g(c, w), then by fewer rounds.

Only worlds where every candidate and `none` have every seed count (a draw still running is
reported as incomplete, never chosen on). Amended before the choice: the candidates are those run
on the whole draw (`RUN_CANDIDATES`); the `progress` ones, stopped part-way, are reported on the
worlds they completed and not chosen among.

    python -m bench.quality.choose_auto                  # docs/results/quality_worlds_dev.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bench.quality.bench import AUTO_CANDIDATES, GRIDS, RUN_CANDIDATES, VARIANTS

TIE_POINTS = 0.005  # within half a point of the best worst-world gain


def gains(runs: pd.DataFrame, candidates: list[str], seeds: list[int]) -> pd.DataFrame:
    """g(c, w) for each candidate and each world complete for all of them and `none`."""
    runs = runs.drop_duplicates(["world", "seed", "method"], keep="last")
    wide = runs.pivot_table(index=["world", "seed"], columns="method", values="accuracy")
    needed = ["none", *candidates]
    rows = []
    for world, per_seed in wide.groupby(level="world"):
        per_seed = per_seed.droplevel("world")
        if not set(seeds) <= set(per_seed.index) or per_seed.loc[seeds, [m for m in needed if m in per_seed]].isna().any().any() \
                or not set(needed) <= set(per_seed.columns):
            continue
        base = per_seed.loc[seeds, "none"]
        for candidate in candidates:
            rows.append({"world": world, "candidate": candidate,
                         "gain": float(((per_seed.loc[seeds, candidate] - base) / base).mean())})
    return pd.DataFrame(rows, columns=["world", "candidate", "gain"])


def rounds_of(candidate: str) -> int:
    settings = VARIANTS[candidate][1]
    return next((int(s.split("=")[1]) for s in settings if s.startswith("budget.rounds=")), 1)


def choose(table: pd.DataFrame) -> dict:
    """The pre-registered choice over a gains table, and the numbers it rests on."""
    per = table.groupby("candidate")["gain"].agg(worst="min", mean="mean").reset_index()
    best_worst = per["worst"].max()
    tied = per[per["worst"] >= best_worst - TIE_POINTS].copy()
    tied["rounds"] = tied["candidate"].map(rounds_of)
    chosen = tied.sort_values(["mean", "rounds"], ascending=[False, True]).iloc[0]
    return {"auto": chosen["candidate"], "settings": VARIANTS[chosen["candidate"]][1],
            "worst_world_gain": float(chosen["worst"]), "mean_gain": float(chosen["mean"]),
            "tied_within_half_a_point": sorted(tied["candidate"]),
            "per_candidate": per.sort_values("worst", ascending=False).to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="?", default=str(GRIDS["issue38_dev"]["results"]))
    args = parser.parse_args()
    runs = pd.DataFrame([json.loads(line) for line in Path(args.records).read_text().splitlines() if line.strip()])
    stopped = [c for c in AUTO_CANDIDATES if c not in RUN_CANDIDATES]
    if stopped:
        partial = pd.concat([gains(runs, [c], GRIDS["issue38_dev"]["seeds"]) for c in stopped], ignore_index=True)
        print("stopped part-way, not chosen among; their gains on the worlds they completed:")
        print(partial.pivot_table(index="world", columns="candidate", values="gain").round(3).to_string())
    table = gains(runs, RUN_CANDIDATES, GRIDS["issue38_dev"]["seeds"])
    worlds = sorted(table["world"].unique())
    expected = len(GRIDS["issue38_dev"]["phases"])
    print(f"{len(worlds)} of {expected} development worlds complete: {', '.join(worlds) or 'none'}")
    if len(worlds) < expected:
        print("incomplete: the pre-registered rule chooses on the whole draw only")
        return
    print(json.dumps(choose(table), indent=2))


if __name__ == "__main__":
    main()
