"""Issue 38's statistics, from the drawn worlds' per-run records alone (bench/quality/README.md):

    .venv/bin/python -m bench.quality.worlds_stats [docs/results/quality_worlds.jsonl] [--method auto]

Per world: `auto` (or --method) against `none`, `random` and the world's best static selection,
each a paired difference over seeds with a paired-bootstrap 95% CI and the seeds it is ahead on;
pooled over all worlds and seeds; the share of the best static rule's gain `auto` captures in the
worlds where some static rule beats `none` clearly (the best rule picked on half the seeds, its
gain and auto's measured on the other half, both ways, averaged); any method below the base
student with its CI below 0 (and whether its report said distillation did not help); the extra
compute a rule costs (its runs' seconds over `none`'s); and the figure of per-world gains of
`auto` and `full` over `none`, worlds sorted; the pre-registered goal, bullet by bullet. Writes
<records stem>.md and .json beside the records, docs/figures/<records stem>.png, and each cell's
`auto` and `full` against `none` and `random` into tadistill/resources/quality_worlds_summary.json
(what `tadistill demo` cites for a run in that cell). The number of comparisons is printed with them
(unadjusted CIs, as pre-registered). While the grid runs, `--package-only` writes only that summary,
from the cells complete over every seed, pointing at the records themselves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.quality.stats import paired

REPO = Path(__file__).resolve().parents[2]
BASELINES = ("base", "none", "random")
PREREGISTERED = "auto"  # the method issue 38's goal is about (bench/quality/README.md); any other is reported beside it
BOOTSTRAP = 10_000


def load(path: Path) -> pd.DataFrame:
    runs = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    return runs.drop_duplicates(["world", "error_rate", "budget", "seed", "method"], keep="last")


def wide(runs: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Per cell (world, error, budget): accuracy by seed x method (NaN where a run is missing;
    each comparison pairs the seeds both of its methods have)."""
    return {cell: part.pivot_table(index="seed", columns="method", values="accuracy")
            for cell, part in runs.groupby(["world", "error_rate", "budget"], sort=True)}


def pair(table: pd.DataFrame, a: str, b: str) -> dict:
    both = table[[a, b]].dropna()
    return paired(both[a].to_numpy(), both[b].to_numpy())


def statics(table: pd.DataFrame, method: str) -> list[str]:
    """The static selections of a cell: every method but the baselines, the one measured and the
    pre-registered `auto`, which decides from the run's evidence (reporting full, auto is not its rival)."""
    return [m for m in table.columns if m not in (*BASELINES, method, PREREGISTERED)]


def _line(p: dict) -> str:
    return f"{100 * p['rel']:+.1f}% [{100 * p['rel_ci'][0]:+.1f}, {100 * p['rel_ci'][1]:+.1f}], ahead {round(p['wins'] * p['n'])}/{p['n']}"


def split_half_share(table: pd.DataFrame, method: str, rules: list[str]) -> dict:
    """The best static rule picked on one half of the seeds (by mean gain over none), its gain and
    `method`'s measured on the other half; both ways, averaged."""
    table = table[[method, "none", *rules]].dropna()
    seeds = list(table.index)
    halves = (seeds[: len(seeds) // 2], seeds[len(seeds) // 2:])
    best_gains, method_gains, picked = [], [], []
    for pick_on, measure_on in (halves, halves[::-1]):
        gain = lambda m, on: float(table.loc[on, m].mean() / table.loc[on, "none"].mean() - 1)  # noqa: E731
        best = max(rules, key=lambda m: gain(m, pick_on))
        picked.append(best)
        best_gains.append(gain(best, measure_on))
        method_gains.append(gain(method, measure_on))
    best_gain, method_gain = float(np.mean(best_gains)), float(np.mean(method_gains))
    return {"picked": picked, "best_static_gain": best_gain, "method_gain": method_gain,
            "share": method_gain / best_gain if best_gain > 0 else None}


def pooled(tables: dict, method: str, seed: int = 0) -> dict:
    """`method` minus `none` over every world and seed: relative gain of the summed accuracies,
    with a bootstrap that resamples seeds within each world."""
    both = [t[[method, "none"]].dropna() for t in tables.values() if {method, "none"} <= set(t)]
    pairs = [(t[method].to_numpy(), t["none"].to_numpy()) for t in both if len(t)]
    rng = np.random.default_rng(seed)
    rels, diffs = [], []
    for _ in range(BOOTSTRAP):
        a = b = 0.0
        d = []
        for x, y in pairs:
            pick = rng.integers(0, len(x), len(x))
            a, b = a + x[pick].sum(), b + y[pick].sum()
            d.append(x[pick] - y[pick])
        rels.append(a / b - 1)
        diffs.append(np.concatenate(d).mean())
    a = sum(x.sum() for x, _ in pairs)
    b = sum(y.sum() for _, y in pairs)
    ahead = sum(int((x > y).sum()) for x, y in pairs)
    n = sum(len(x) for x, _ in pairs)
    return {"worlds": len(pairs), "n": n, "ahead": ahead, "rel": float(a / b - 1),
            "rel_ci": [float(np.percentile(rels, 2.5)), float(np.percentile(rels, 97.5))],
            "abs": float(np.mean([(x - y).mean() for x, y in pairs])),
            "abs_ci": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]}


def below_base(runs: pd.DataFrame, tables: dict) -> list[dict]:
    """Every (cell, method) whose final student is below the base student with the CI below 0,
    and how many of its runs ended on the start ('distillation did not help' in the report)."""
    out = []
    for cell, table in tables.items():
        if "base" not in table:
            continue
        for m in table.columns.drop("base"):
            p = pair(table, m, "base")
            if p["abs_ci"][1] < 0:
                part = runs[(runs[["world", "error_rate", "budget"]].apply(tuple, axis=1) == cell) & (runs["method"] == m)]
                said = int((part.get("final_pick", pd.Series(dtype=object)) == "start").sum())
                out.append({"cell": list(cell), "method": m, "vs_base": _line(p), "runs": len(part),
                            "said_did_not_help": said})
    return out


def compute_cost(runs: pd.DataFrame) -> dict:
    """Each method's mean run seconds over `none`'s in the same (cell, seed): the extra compute a rule adds."""
    t = runs.pivot_table(index=["world", "error_rate", "budget", "seed"], columns="method", values="seconds")
    return {m: round(float((t[m] / t["none"]).mean()), 2) for m in t.columns if m != "none" and t[m].notna().any()}


def summarise(runs: pd.DataFrame, method: str) -> tuple[str, dict]:
    tables = wide(runs)
    rows, per_world, comparisons, captured = [], [], 0, []
    for cell, table in tables.items():
        if method not in table or "none" not in table:
            continue
        rules = statics(table, method)
        best = max(rules, key=lambda m: table[m].mean()) if rules else None
        vs = {b: pair(table, method, b) for b in ("none", "random", best) if b in table}
        comparisons += len(vs)
        clear = [m for m in rules if pair(table, m, "none")["abs_ci"][0] > 0]
        share = split_half_share(table, method, rules) if clear else None
        if share:
            captured.append(share)
        seeds = int(table[method].notna().sum())
        per_world.append({"cell": list(cell), "seeds": seeds, "best_static": best,
                          "static_clearly_ahead_of_none": clear, "split_half": share,
                          **{f"vs_{b if b in BASELINES else 'best_static'}": vs[b] for b in vs},
                          "means": {m: round(float(table[m].mean()), 4) for m in table.columns}})
        rows.append({"world": cell[0], "error": cell[1], "budget": cell[2], "seeds": seeds,
                     **{m: f"{table[m].mean():.3f}" for m in ("base", "none", "random", method) if m in table},
                     "best static": f"{best} {table[best].mean():.3f}" if best else "-",
                     f"{method} vs none": _line(vs["none"]), f"{method} vs random": _line(vs["random"]) if "random" in vs else "-",
                     f"{method} vs best static": _line(vs[best]) if best in vs else "-"})
    # Pooled over the drawn worlds only: a named world (A at 600) is a goal of its own.
    pool = pooled({c: t for c, t in tables.items() if method in t and str(c[0]).startswith("drawn")}, method)
    behind = [w for w in per_world if any(w.get(f"vs_{b}", {}).get("abs_ci", [0, 1])[1] < 0 for b in ("none", "random"))]
    shares = [c["share"] for c in captured if c["share"] is not None]
    summary = {
        "method": method, "comparisons": comparisons + 1, "per_world": per_world, "pooled_vs_none": pool,
        "worlds_behind_none_or_random": [w["cell"] for w in behind],
        "share_captured": {"worlds": len(captured), "mean_share": float(np.mean(shares)) if shares else None,
                           "mean_gain_ratio": (float(np.mean([c["method_gain"] for c in captured]) /
                                                     np.mean([c["best_static_gain"] for c in captured]))
                                               if captured else None)},
        "below_base": below_base(runs, tables), "compute_vs_none": compute_cost(runs),
    }
    from tadistill.tables import markdown_table

    text = "\n".join([
        f"# {method} on the drawn worlds", "",
        f"Paired by seed; 95% paired-bootstrap CIs over seeds, unadjusted; {summary['comparisons']} comparisons.", "",
        markdown_table(pd.DataFrame(rows)), "",
        f"Pooled over {pool['worlds']} worlds and {pool['n']} seeds: {method} vs none {100 * pool['rel']:+.1f}% "
        f"[{100 * pool['rel_ci'][0]:+.1f}, {100 * pool['rel_ci'][1]:+.1f}], ahead on {pool['ahead']} of {pool['n']}.", "",
        f"Worlds where {method} is behind none or random with the CI below 0: "
        f"{', '.join(str(c[0]) for c in summary['worlds_behind_none_or_random']) or 'none'}.", "",
        f"Share of the best static rule's gain captured (split-half), over {len(captured)} worlds where a static rule "
        f"beats none clearly: " + (f"{100 * summary['share_captured']['mean_share']:.0f}% (mean of per-world shares)"
                                   if shares else "no such world") + ".", "",
        "Final students below the base student with the CI below 0: "
        + ("; ".join(f"{b['cell'][0]} {b['method']} {b['vs_base']} ({b['said_did_not_help']} of {b['runs']} runs said "
                     "distillation did not help)" for b in summary["below_base"]) or "none") + ".", "",
        "Run time over `none`'s (mean ratio, same cell and seed): "
        + ", ".join(f"{m} {r:g}x" for m, r in sorted(summary["compute_vs_none"].items())) + ".", ""])
    return text, summary


PACKAGE_SUMMARY = REPO / "tadistill" / "resources" / "quality_worlds_summary.json"  # what `tadistill demo` cites


def complete(table: pd.DataFrame, seeds: int) -> bool:
    """A cell every method of has run on all its seeds (a grid runs seed-major, so a cell part-way
    through has a seed with a method missing, or fewer seeds)."""
    return len(table) >= seeds and not table.isna().to_numpy().any()


def cell_comparisons(runs: pd.DataFrame, methods: tuple, against: tuple = ("none", "random"),
                     seeds: int = 0) -> list[dict]:
    """Per cell, each of `methods` against each of `against`: the paired difference over seeds (the
    fields `tadistill demo` prints under its table for a run in that cell); only cells complete
    over `seeds` seeds, so a cell the grid is still running is never cited."""
    out = []
    for (world, error, budget), table in wide(runs).items():
        if not complete(table, seeds):
            continue
        for a in methods:
            for b in against:
                if {a, b} <= set(table):
                    out.append({"world": world, "error_rate": error, "budget": int(budget), "a": a, "b": b,
                                **pair(table, a, b)})
    return out


WORLD_A_600 = ("shaped", 0.4, 600)  # the named cell of the goal (the first grid's, where full reached +24.4%)


def goal(summary: dict) -> list[dict]:
    """Each bullet of issue 38's pre-registered goal (bench/quality/README.md), held or missed, with
    the numbers that decide it. The method becomes the default only if every bullet holds."""
    method, pool, share = summary["method"], summary["pooled_vs_none"], summary["share_captured"]
    world_a = next((w for w in summary["per_world"] if tuple(w["cell"]) == WORLD_A_600), None)
    unexplained = [b for b in summary["below_base"] if b["said_did_not_help"] < b["runs"]]
    a_line = (f"{100 * world_a['vs_none']['rel']:+.1f}% [{100 * world_a['vs_none']['rel_ci'][0]:+.1f}, "
              f"{100 * world_a['vs_none']['rel_ci'][1]:+.1f}]" if world_a and "vs_none" in world_a else "not run")
    return [
        {"bullet": f"in no world is {method} behind none or random with the CI below 0",
         "held": not summary["worlds_behind_none_or_random"],
         "numbers": ", ".join(str(c[0]) for c in summary["worlds_behind_none_or_random"]) or "no such world"},
        {"bullet": f"pooled over the drawn worlds, {method} minus none has its CI above 0",
         "held": pool["rel_ci"][0] > 0,
         "numbers": f"{100 * pool['rel']:+.1f}% [{100 * pool['rel_ci'][0]:+.1f}, {100 * pool['rel_ci'][1]:+.1f}]"},
        {"bullet": f"where a static rule beats none clearly, {method} captures at least 80% of the best one's gain",
         "held": share["mean_share"] is None or share["mean_share"] >= 0.8,
         "numbers": (f"{100 * share['mean_share']:.0f}% over {share['worlds']} worlds" if share["mean_share"] is not None
                     else "no such world")},
        {"bullet": f"world A at budget 600: {method} at least +20% over none, CI above 0",
         "held": bool(world_a and "vs_none" in world_a and world_a["vs_none"]["rel"] >= 0.2
                      and world_a["vs_none"]["rel_ci"][0] > 0),
         "numbers": a_line},
        {"bullet": "no final student below the base student with the CI below 0, unless its report says "
                   "distillation did not help",
         "held": not unexplained,
         "numbers": "; ".join(f"{b['cell'][0]} {b['method']} ({b['said_did_not_help']} of {b['runs']} said so)"
                              for b in unexplained) or "none"},
        {"bullet": f"at teacher error 0, {method}'s trust costs at most 1 point",
         "held": True, "numbers": "its trust mode is none: nothing to cost (pre-registered, no run measures it)"},
    ]


def goal_lines(summary: dict) -> list[str]:
    checks = goal(summary)
    verdict = ("every bullet holds: it becomes the default method" if all(c["held"] for c in checks)
               else "not every bullet holds: `full` stays the default method")
    return ["Issue 38's goal, bullet by bullet:", "",
            *[f"- {'held' if c['held'] else 'missed'}: {c['bullet']} ({c['numbers']})" for c in checks], "",
            f"{summary['method']}: {verdict}.", ""]


def plot(runs: pd.DataFrame, method: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []  # (cell's label, {method: (gain over none in %, its CI)}), paired by seed
    for cell, table in wide(runs).items():
        if {method, "none"} <= set(table):
            label = cell[0] if cell[0].startswith("drawn") else f"{cell[0]} (A) {cell[2]}"
            rows.append((label, {m: _gain_over_none(table, m) for m in (method, "full")}))
    rows.sort(key=lambda row: row[1][method][0])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows)), 3.8))
    x = np.arange(len(rows))
    for offset, name in zip((-0.2, 0.2), (method, "full")):
        gains = np.array([row[1][name][0] for row in rows])
        errors = np.abs(np.array([row[1][name][1] for row in rows]).T - gains)
        ax.bar(x + offset, gains, 0.4, yerr=errors, capsize=2, error_kw={"linewidth": 0.8}, label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [row[0] for row in rows], rotation=45, ha="right")
    ax.set_ylabel("accuracy gain over none (%),\n95% paired-bootstrap CI")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)  # --figures may name a folder not made yet
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _gain_over_none(table: pd.DataFrame, method: str) -> tuple[float, list[float]]:
    """A method's relative gain over none in %, with its CI (NaN where the cell lacks the method)."""
    if method not in table:
        return np.nan, [np.nan, np.nan]
    p = pair(table, method, "none")
    return 100 * p["rel"], [100 * p["rel_ci"][0], 100 * p["rel_ci"][1]]


def write_package_summary(runs: pd.DataFrame, method: str, report: Path, out: Path = PACKAGE_SUMMARY) -> None:
    """The complete cells' comparisons `tadistill demo` cites, pointing at `report` (the records
    themselves while the grid runs; the report written from them once it is done)."""
    from bench.quality.bench import GRIDS

    seeds, where = len(GRIDS["issue38"]["seeds"]), report.resolve()
    out.write_text(json.dumps({
        "report": where.relative_to(REPO).as_posix() if where.is_relative_to(REPO) else str(where),
        "comparisons": cell_comparisons(runs, tuple(dict.fromkeys((method, "full"))), seeds=seeds)}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="?", default=str(REPO / "docs" / "results" / "quality_worlds.jsonl"))
    parser.add_argument("--method", default="auto")
    parser.add_argument("--figures", default=str(REPO / "docs" / "figures"))
    parser.add_argument("--doc", default=None,
                        help="also put the tables into this page, between its <records stem>:begin/end markers "
                             "(<records stem>_<method> for a method other than auto)")
    parser.add_argument("--package-summary", default=str(PACKAGE_SUMMARY),
                        help="where the summary `tadistill demo` cites goes (default: the package's)")
    parser.add_argument("--package-only", action="store_true",
                        help="write only the package summary `tadistill demo` cites, from the complete cells "
                             "(while the grid runs: no table, goal or figure from a part of it)")
    args = parser.parse_args()
    path = Path(args.records)
    runs = load(path)
    preregistered = args.method == PREREGISTERED  # the goal, the figure and the demo's summary are its
    if preregistered or args.package_only:
        write_package_summary(runs, PREREGISTERED, path if args.package_only else path.with_suffix(".md"),
                              Path(args.package_summary))
    if args.package_only:
        print(f"{args.package_summary}: the complete cells of {path}")
        return
    text, summary = summarise(runs, args.method)
    if preregistered:  # another method is reported beside it, without the goal
        text += "\n" + "\n".join(goal_lines(summary))
        summary["goal"] = goal(summary)
    stem = path.stem + ("" if preregistered else f"_{args.method}")
    path.with_name(f"{stem}.md").write_text(text)
    if args.doc:
        from bench.quality.stats import replace_between

        page = Path(args.doc)
        body = text.split("\n", 2)[2]  # the page has its own heading
        page.write_text(replace_between(page.read_text(), f"<!-- {stem}:begin -->", f"<!-- {stem}:end -->", body))
    path.with_name(f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    if preregistered:  # its figure has the default method's bars beside it already
        plot(runs, args.method, Path(args.figures) / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
