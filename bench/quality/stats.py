"""The quality benchmark's figures, from its per-run records alone.

    .venv/bin/python -m bench.quality.stats [docs/results/quality.jsonl] [--readme docs/benchmarks/quality.md]

Reads one JSON object per run (bench.py writes them) and writes:

- docs/results/quality.md: per cell, every method's mean accuracy over seeds, and the paired
  differences that matter (full vs none, full vs random, random vs none, oracle vs none; at
  the factorial cell every selection x trust cell vs none and vs random), absolute and
  relative, each with a paired-bootstrap 95% confidence interval over seeds, the share of seeds
  on which the first method wins, and the number of comparisons made (with the
  Bonferroni-adjusted interval of the headline); and per world and teacher error, the budget
  `none` needs to match full's accuracy (spend saved, interpolated over the grid's budgets);
- docs/figures/quality_cells.png (accuracy per method per cell) and
  docs/figures/quality_factorial.png (the factorial's gains over none);
- with --readme, the page's table between its `quality:begin` / `quality:end` markers.

Pairing: a seed fixes the same warm-up purchase, test set and teacher for every method of a
cell, so differences are taken within a seed, then resampled over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
CELL = ["world", "error_rate", "budget"]
HEADLINE = {"world": "shaped", "error_rate": 0.4, "budget": 300}
# Whose spend saved is reported: full, and the second issue-26 grid's headline method.
SPEND_METHODS = ("full", "proximal_weight")
PAIRS = [("full", "none"), ("full", "random"), ("random", "none"), ("oracle", "none")]
# Issue 27's grid (README.md here, pre-registered 2026-12-05): full's selection with each trust signal.
ISSUE27_CELLS = {("shaped", 0.4, 300), ("holdout", 0.4, 300)}
ISSUE27_METHODS = ("both_none", "full_answer_confidence", "full_combined")
# Issue 28's grid (README.md here, pre-registered 2026-12-05): teacher policies at equal money.
ISSUE28_CELLS = {("shaped", 0.5, 600), ("holdout", 0.5, 600)}
ISSUE28_METHODS = ("cheap_only", "dear_only", "cascade")
TEACHER_PAIRS = [("cascade", "cheap_only"), ("cascade", "dear_only"), ("dear_only", "cheap_only")]
# Issue 27's check (README.md here): full's selection with each trust signal against no trust, and
# the new signals against full's.
TRUST_PAIRS = [("full", "both_none"), ("full_answer_confidence", "both_none"), ("full_combined", "both_none"),
               ("full_answer_confidence", "full"), ("full_combined", "full")]
BOOTSTRAP = 10_000
UNRECORDED = "unrecorded (before 2026-12-04)"
MAIN = ("base", "none", "random", "full", "oracle")
# What the pre-registration's grid held: the main methods everywhere, the factorial (and
# ta_teacher_only) at the headline cell. Anything else was chosen after seeing results: it is
# marked post hoc, and also compared with `full`, the method it would replace.
PRE_REGISTERED_CELLS = {("shaped", 0.4, 300)}
# Issue 26's grid (README.md here): `frontier_weight` beside the main methods, as a check of a
# selection rule that reads the student's state (not chosen as the default: see README.md).
ISSUE26_CELLS = {(world, 0.4, budget) for world in ("shaped", "holdout", "weak", "long") for budget in (300, 600)}
# Its second grid (2026-12-04) adds `proximal_weight`, compared with full too.
ISSUE26_METHODS = ("frontier_weight", "proximal_weight")


def post_hoc(cell: tuple, method: str) -> bool:
    from tadistill.methods import FACTORIAL

    pre_registered = (method in MAIN
                      or (tuple(cell) in PRE_REGISTERED_CELLS and (method in FACTORIAL or method == "ta_teacher_only"))
                      or (tuple(cell) in ISSUE26_CELLS and method in ISSUE26_METHODS)
                      or (tuple(cell) in ISSUE27_CELLS and method in ISSUE27_METHODS)
                      or (tuple(cell) in ISSUE28_CELLS and method in ISSUE28_METHODS))
    return not pre_registered


def load(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows)
    # Which machine arithmetic made each run (bench/quality/machine.py); runs recorded before the
    # key existed share one unnamed arithmetic. Runs of different arithmetic are never paired.
    frame["arithmetic"] = frame["arithmetic"].fillna(UNRECORDED) if "arithmetic" in frame else UNRECORDED
    if "by_teacher" in frame:
        frame["questions_trained"] = frame["by_teacher"].map(questions_trained)
    # A run recorded twice (a rerun of a finished grid) counts once: the last record wins.
    return frame.drop_duplicates(CELL + ["seed", "method", "arithmetic"], keep="last").reset_index(drop=True)


def questions_trained(by_teacher) -> float:
    """The distinct questions a teacher policy trained on: every question is first bought from the
    first teacher it asks, so that teacher's count; a request to a later teacher re-buys one of
    them. NaN for a run without the record."""
    if not isinstance(by_teacher, list) or not by_teacher:
        return float("nan")
    return float(by_teacher[0]["questions"])


def _with_arithmetic(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with their arithmetic column (records made before it existed share one)."""
    return runs if "arithmetic" in runs else runs.assign(arithmetic=UNRECORDED)


def complete_only(runs: pd.DataFrame, min_seeds: int) -> tuple[pd.DataFrame, list[str]]:
    """Drop each (cell, method) with fewer than min_seeds seeds: a grid cut short is reported as
    not run for those, never with fewer seeds. Returns what is kept and what was left out."""
    counts = runs.groupby(CELL + ["method"])["seed"].nunique()
    short = counts[counts < min_seeds]
    left_out = [f"{w}, error {e:g}, budget {b}: {m} ({n} of {min_seeds} seeds)" for (w, e, b, m), n in short.items()]
    keep = ~runs.set_index(CELL + ["method"]).index.isin(short.index)
    return runs[keep].reset_index(drop=True), left_out


def paired(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, seed: int = 0) -> dict:
    """Mean difference a - b and relative gain mean(a)/mean(b) - 1, with paired-bootstrap CIs."""
    rng = np.random.default_rng(seed)
    n = len(a)
    picks = rng.integers(0, n, size=(BOOTSTRAP, n))
    diffs = (a - b)[picks].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = a[picks].mean(axis=1) / b[picks].mean(axis=1) - 1
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {
        "n": n, "wins": float((a > b).mean()), "abs": float((a - b).mean()), "abs_ci": [float(np.percentile(diffs, lo)), float(np.percentile(diffs, hi))],
        "rel": float(a.mean() / b.mean() - 1) if b.mean() else float("nan"),
        "rel_ci": [float(np.nanpercentile(ratios, lo)), float(np.nanpercentile(ratios, hi))],
    }


def comparisons(runs: pd.DataFrame) -> list[dict]:
    """Every paired comparison the summary reports, one dict each."""
    out = []
    for cell, part in runs.groupby(CELL, sort=True):
        # Paired by seed within one machine arithmetic: a seed's runs on another machine start from
        # a differently built student, so they are no pair.
        acc = _with_arithmetic(part).pivot_table(index=["seed", "arithmetic"], columns="method", values="accuracy")
        # Every method beyond the main ones (the factorial's cells) against none and random;
        # a post-hoc one against full too.
        pairs = list(PAIRS) + [(m, b) for m in acc.columns if m not in MAIN
                               for b in ("none", "random") + (("full",) if post_hoc(cell, m) or m in ISSUE26_METHODS else ())]
        pairs += [pair for pair in TRUST_PAIRS if pair not in pairs and "both_none" in acc]
        pairs += [pair for pair in TEACHER_PAIRS if pair not in pairs]
        for a, b in pairs:
            if a in acc and b in acc:
                both = acc[[a, b]].dropna()
                if len(both) >= 2:
                    out.append({**dict(zip(CELL, cell)), "a": a, "b": b, "post_hoc": post_hoc(cell, a),
                                **paired(both[a].to_numpy(), both[b].to_numpy())})
    return out


def cell_table(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.groupby(CELL + ["method"], sort=True).agg(
        seeds=("seed", "nunique"), accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
        accuracy_hard=("accuracy_hard", "mean"), optimizer_steps=("optimizer_steps", "mean"),
        examples_seen=("examples_seen", "mean"), requests_paid=("requests_paid", "mean"),
        bought_wrong_share=("bought_wrong_share", "mean"), loss_wrong_share=("loss_wrong_share", "mean"),
        bought_mean_steps=("bought_mean_steps", "mean"),
        **({"money": ("money", "mean")} if "money" in runs else {}),
        **({"questions_trained": ("questions_trained", "mean")} if "questions_trained" in runs else {}),
    ).reset_index()


def _fmt_ci(value: float, ci: list[float], pct: bool) -> str:
    if pct:
        return f"{100 * value:+.1f}% [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"
    return f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _md(frame: pd.DataFrame) -> str:
    from tadistill.tables import markdown_table

    return markdown_table(frame)


def budget_to_match(budgets: list[float], accuracies: list[float], target: float) -> Optional[float]:
    """The budget at which a method whose mean accuracy is `accuracies` at `budgets` first reaches
    `target`, linearly interpolated between grid points; None where no budget of the grid reaches it."""
    points = sorted(zip(budgets, accuracies))
    if not points:
        return None
    if points[0][1] >= target:  # already there at the grid's smallest budget: at most that
        return float(points[0][0])
    for (b0, a0), (b1, a1) in zip(points, points[1:]):
        if a1 >= target > a0:
            return float(b0 + (target - a0) * (b1 - b0) / (a1 - a0))
    return None


def spend_saved(runs: pd.DataFrame, method: str = "full", baseline: str = "none") -> list[dict]:
    """Per cell where both ran: the budget `baseline` needs (over the budgets of its world and
    teacher error) to reach `method`'s mean accuracy, and its ratio to the cell's budget."""
    means = runs.groupby(CELL + ["method"])["accuracy"].mean()
    out = []
    for (world, rate), part in runs.groupby(["world", "error_rate"], sort=True):
        base = part[part["method"] == baseline].groupby("budget")["accuracy"].mean()
        for budget in sorted(part.loc[part["method"] == method, "budget"].unique()):
            target = means.get((world, rate, budget, method))
            needed = budget_to_match(list(base.index), list(base.to_numpy()), target)
            out.append({"world": world, "error_rate": rate, "budget": int(budget), "method": method,
                        "accuracy": float(target), "baseline": baseline, "baseline_budgets": [int(b) for b in base.index],
                        "baseline_budget_needed": needed,
                        "ratio": None if needed is None else needed / budget,
                        "beyond_grid": needed is None,
                        # `baseline` at its smallest budget already matches: the grid says only "at most that".
                        "at_most": needed is not None and needed == min(base.index)})
    return out


def spend_saved_all(runs: pd.DataFrame, methods: tuple[str, ...] = SPEND_METHODS) -> list[dict]:
    """spend_saved for each of `methods` that ran (full, and a grid's own headline method)."""
    ran = set(runs["method"])
    return [row for m in methods if m in ran for row in spend_saved(runs, m)]


def _needs_text(row: dict) -> str:
    if row["beyond_grid"]:
        return "beyond the grid"
    if row["at_most"]:
        return f"at most {row['baseline_budget_needed']:.0f}"
    return f"{row['baseline_budget_needed']:.0f}"


def _ratio_text(row: dict) -> str:
    if row["ratio"] is None:
        return "-"
    return ("at most " if row["at_most"] else "") + f"{row['ratio']:.2f}"


def headline(runs: pd.DataFrame, count: int) -> dict:
    """The pre-registered headline: full vs none and full vs random at the headline cell, with
    95% and Bonferroni-adjusted (over every comparison made) intervals."""
    part = runs
    for key, value in HEADLINE.items():
        part = part[part[key] == value]
    acc = _with_arithmetic(part).pivot_table(index=["seed", "arithmetic"], columns="method", values="accuracy")
    result = {"cell": HEADLINE, "comparisons_made": count}
    for other in ("none", "random"):
        if "full" in acc and other in acc:
            both = acc[["full", other]].dropna()
            a, b = both["full"].to_numpy(), both[other].to_numpy()
            result[f"full_vs_{other}"] = paired(a, b)
            result[f"full_vs_{other}_bonferroni"] = paired(a, b, alpha=0.05 / max(1, count))
    return result


def comparisons_by_pair(comps: list[dict]) -> dict[tuple, dict]:
    """Each comparison under its key (world, error_rate, budget, a, b)."""
    return {(c["world"], c["error_rate"], c["budget"], c["a"], c["b"]): c for c in comps}


def teacher_headline(table: pd.DataFrame, comps: list[dict]) -> list[dict]:
    """Issue 28's pre-registered headline, per world: the cascade against the better single-teacher
    policy (the one with the higher mean accuracy), with what each policy spent and bought.
    `table` is cell_table's, `comps` comparisons'."""
    by = comparisons_by_pair(comps)
    cells = table.set_index(CELL + ["method"])
    out = []
    for cell, part in table[table["method"].isin(ISSUE28_METHODS)].groupby(CELL, sort=True):
        if set(part["method"]) != set(ISSUE28_METHODS):
            continue
        better = max(("cheap_only", "dear_only"), key=lambda m: cells.loc[(*cell, m), "accuracy"])
        comp = by.get((*cell, "cascade", better))
        if comp is None:
            continue
        rows = {m: cells.loc[(*cell, m)] for m in ISSUE28_METHODS}
        policies = {m: {"accuracy": float(row["accuracy"]), "money": float(row.get("money", float("nan"))),
                        "requests": float(row["requests_paid"]),
                        "questions_trained": float(row.get("questions_trained", float("nan"))),
                        "wrong_share": float(row["bought_wrong_share"])} for m, row in rows.items()}
        out.append({**dict(zip(CELL, cell)), "better_single": better, "cascade_vs_better": comp,
                    "goal_met": comp["abs_ci"][0] > 0, "policies": policies})
    return out


def _teacher_headline_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        comp = row["cascade_vs_better"]
        spent = "; ".join(f"{m} {p['accuracy']:.3f}, money {p['money']:.4f}, {p['requests']:.0f} requests for "
                          f"{p['questions_trained']:.0f} questions, "
                          f"wrong share {p['wrong_share']:.3f}" for m, p in row["policies"].items())
        lines.append(f"- world {row['world']}, budget {row['budget']} ({comp['n']} seeds): cascade vs "
                     f"{row['better_single']} (the better single teacher) {_fmt_ci(comp['rel'], comp['rel_ci'], True)} "
                     f"relative, {_fmt_ci(comp['abs'], comp['abs_ci'], False)} absolute, ahead on "
                     f"{round(comp['wins'] * comp['n'])} of {comp['n']}; goal (CI above 0) "
                     f"{'met' if row['goal_met'] else 'not met'}. {spent}.")
    return lines


def summary_markdown(runs: pd.DataFrame, source: str = "docs/results/quality.jsonl") -> tuple[str, dict]:
    table = cell_table(runs)
    comps = comparisons(runs)
    head = headline(runs, len(comps))
    lines = ["# Quality benchmark: results", "",
             f"{len(runs)} runs; {len(comps)} paired comparisons (each a paired bootstrap over seeds, "
             f"{BOOTSTRAP:,} resamples, 95% intervals unless said). Generated by `python -m bench.quality.stats` "
             f"from `{source}`.", ""]
    lines += ["## Headline (pre-registered in bench/quality/README.md)", ""]
    for other in ("none", "random"):
        if f"full_vs_{other}" in head:
            h, hb = head[f"full_vs_{other}"], head[f"full_vs_{other}_bonferroni"]
            lines.append(f"- full vs {other} at world {HEADLINE['world']}, teacher error {HEADLINE['error_rate']}, "
                         f"budget {HEADLINE['budget']} ({h['n']} seeds): {_fmt_ci(h['rel'], h['rel_ci'], True)} relative, "
                         f"{_fmt_ci(h['abs'], h['abs_ci'], False)} absolute; Bonferroni-adjusted over "
                         f"{len(comps)} comparisons: {_fmt_ci(hb['rel'], hb['rel_ci'], True)}")
    teachers = teacher_headline(table, comps)
    if teachers:
        head["teacher_policies"] = teachers
    lines += _teacher_headline_lines(teachers)
    lines += ["", "## Accuracy per cell", ""]
    shown = table.assign(
        accuracy=[f"{m:.3f} ± {s:.3f}" for m, s in zip(table["accuracy"], table["accuracy_sd"].fillna(0))],
        accuracy_hard=table["accuracy_hard"].map(lambda v: f"{v:.3f}"),
        bought_wrong_share=table["bought_wrong_share"].map(lambda v: "-" if v != v else f"{v:.3f}"),
        loss_wrong_share=table["loss_wrong_share"].map(lambda v: "-" if v != v else f"{v:.3f}"),
        bought_mean_steps=table["bought_mean_steps"].map(lambda v: "-" if v != v else f"{v:.2f}"),
        optimizer_steps=table["optimizer_steps"].map(lambda v: f"{v:.0f}"),
        examples_seen=table["examples_seen"].map(lambda v: f"{v:.0f}"),
        **({"money": table["money"].map(lambda v: "-" if v != v else f"{v:.4f}")} if "money" in table else {}),
        **({"questions_trained": table["questions_trained"].map(lambda v: "-" if v != v else f"{v:.0f}")}
           if "questions_trained" in table else {}),
    )
    lines.append(_md(shown.drop(columns=["accuracy_sd"]).rename(columns={
        "error_rate": "teacher error", "accuracy": "accuracy (mean ± sd)", "accuracy_hard": "accuracy, 3+ steps",
        "optimizer_steps": "optimizer steps", "examples_seen": "examples seen",
        "bought_wrong_share": "wrong share bought", "loss_wrong_share": "wrong share of loss",
        "bought_mean_steps": "steps of bought", "requests_paid": "requests",
        "questions_trained": "questions trained"})))
    lines += ["", "## Paired differences", ""]
    comp = pd.DataFrame(comps)
    if len(comp):
        comp = comp.assign(
            relative=[_fmt_ci(r, c, True) for r, c in zip(comp["rel"], comp["rel_ci"])],
            absolute=[_fmt_ci(r, c, False) for r, c in zip(comp["abs"], comp["abs_ci"])],
            above_zero=["yes" if c[0] > 0 else ("below" if c[1] < 0 else "no") for c in comp["abs_ci"]],
            post_hoc=comp["post_hoc"].map({True: "post hoc", False: ""}),
            wins=[f"{round(w * n)} of {n}" for w, n in zip(comp["wins"], comp["n"])],
        )[CELL + ["a", "b", "n", "relative", "absolute", "above_zero", "wins", "post_hoc"]]
        lines.append(_md(comp.rename(columns={"error_rate": "teacher error", "n": "seeds",
                                              "above_zero": "CI above 0", "wins": "a ahead on", "post_hoc": "chosen"})))
        lines += ["", "'post hoc': a method or cell chosen after the pre-registered results were seen "
                  "(bench/quality/README.md, 'What ran'); its figures are checks, not the headline.", ""]
    saved = spend_saved_all(runs)
    if saved:
        lines += ["## Spend saved", "",
                  "The budget `none` needs to reach the method's mean accuracy, interpolated linearly over the budgets "
                  "`none` ran at in the same world and teacher error ('beyond the grid': no budget of the grid "
                  "reaches it; 'at most': `none` already reaches it at its smallest budget, so the method saved "
                  "nothing the grid can see).", ""]
        lines.append(_md(pd.DataFrame([{
            "world": r["world"], "teacher error": f"{r['error_rate']:g}", "budget": r["budget"],
            "method": r["method"], "accuracy": f"{r['accuracy']:.3f}",
            "none's budgets": ", ".join(map(str, r["baseline_budgets"])),
            "none needs": _needs_text(r), "x the method's budget": _ratio_text(r),
        } for r in saved])))
        lines.append("")
    return "\n".join(lines) + "\n", {"headline": head, "comparisons": comps, "spend_saved": saved}


def plot_cells(runs: pd.DataFrame, out: Path) -> None:
    from tadistill.report import _pyplot

    plt = _pyplot()
    cells = runs.groupby(CELL, sort=True)
    fig, axes = plt.subplots(1, len(cells), figsize=(3.6 * len(cells), 3.6), squeeze=False, sharey=True)
    for ax, (cell, part) in zip(axes[0], cells):
        means = part.groupby("method")["accuracy"].agg(["mean", "std"]).sort_values("mean")
        ax.barh(means.index, means["mean"], xerr=means["std"].fillna(0), color="#4c72b0")
        ax.set_title(f"{cell[0]}, error {cell[1]:g}, budget {cell[2]}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("test accuracy (mean ± sd)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_factorial(comps: list[dict], out: Path) -> bool:
    from tadistill.methods import SELECTIONS, TRUSTS
    from tadistill.report import _pyplot

    aliases = {"both_weight": "full", "random_none": "random"}
    found = {c["a"]: c for c in comps if c["b"] == "none" and all(c[k] == v for k, v in HEADLINE.items())}
    grid = np.full((len(SELECTIONS), len(TRUSTS)), np.nan)
    for i, s in enumerate(SELECTIONS):
        for j, t in enumerate(TRUSTS):
            name = aliases.get(f"{s}_{t}", f"{s}_{t}")
            if name in found:
                grid[i, j] = 100 * found[name]["rel"]
    if np.isnan(grid).all():
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    image = ax.imshow(grid, cmap="RdBu", vmin=-np.nanmax(abs(grid)), vmax=np.nanmax(abs(grid)))
    ax.set_xticks(range(len(TRUSTS)), [f"trust {t}" for t in TRUSTS], fontsize=8)
    ax.set_yticks(range(len(SELECTIONS)), [f"select {s}" for s in SELECTIONS], fontsize=8)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if grid[i, j] == grid[i, j]:
                ax.text(j, i, f"{grid[i, j]:+.1f}%", ha="center", va="center", fontsize=8)
    ax.set_title("relative gain over none (headline cell)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def readme_table(runs: pd.DataFrame, comps: list[dict]) -> str:
    """The README's table: main methods per cell, gains over none with their CIs."""
    table = cell_table(runs)
    extra = tuple(m for m in SPEND_METHODS[1:] if m in set(runs["method"]))
    by = comparisons_by_pair(comps)
    rows = []
    for cell, part in table.groupby(CELL, sort=True):
        acc = part.set_index("method")["accuracy"]
        row = {"world": cell[0], "teacher error": f"{cell[1]:g}", "budget": cell[2],
               "seeds": int(part["seeds"].min())}
        for m in ("base", "none", "oracle", "random", "full") + extra:
            if m not in acc:
                row[m] = "-"
                continue
            c = by.get((*cell, m, "none"))
            row[m] = f"{acc[m]:.3f}" + (f" ({_fmt_ci(c['rel'], c['rel_ci'], True)})" if c else "")
        c = by.get((*cell, "full", "random"))
        row["full vs random"] = _fmt_ci(c["rel"], c["rel_ci"], True) if c else "-"
        rows.append(row)
    from tadistill.tables import markdown_table

    return markdown_table(pd.DataFrame(rows))


def write_cascade_synthetic(runs: pd.DataFrame, path: Path) -> None:
    """Issue 28's per-run records, `synthetic` in cascade.json (other keys kept): one object per
    run of a teacher policy, {world, policy, seed, money, accuracy}; nothing where none ran."""
    mine = runs[runs["method"].isin(ISSUE28_METHODS)]
    if mine.empty or "money" not in mine:
        return
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored["synthetic"] = [{"world": r.world, "policy": r.method, "seed": int(r.seed), "money": round(float(r.money), 6),
                            "accuracy": float(r.accuracy), "requests": int(r.requests_paid),
                            "questions": None if pd.isna(getattr(r, "questions_trained", float("nan")))
                            else int(r.questions_trained),
                            "bought_wrong_share": None if pd.isna(r.bought_wrong_share) else float(r.bought_wrong_share)}
                           for r in mine.sort_values(["world", "method", "seed"]).itertuples()]
    path.write_text(json.dumps(stored, indent=2) + "\n")


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    a, b = text.index(begin) + len(begin), text.index(end)
    return text[:a] + "\n" + body.rstrip() + "\n" + text[b:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default=str(REPO / "docs" / "results" / "quality.jsonl"))
    parser.add_argument("--readme", default=None, help="rewrite this README's quality table")
    parser.add_argument("--docs", default=str(REPO / "docs"))
    parser.add_argument("--min-seeds", type=int, default=10, help="report a method in a cell only with this many seeds")
    args = parser.parse_args()
    runs, left_out = complete_only(load(Path(args.results)), args.min_seeds)
    docs = Path(args.docs)
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    (docs / "results").mkdir(parents=True, exist_ok=True)
    markdown, data = summary_markdown(runs, str(Path(args.results).resolve().relative_to(REPO))
                                      if Path(args.results).resolve().is_relative_to(REPO) else args.results)
    if left_out:
        markdown += ("\n## Not reported (incomplete)\n\nRecorded in the results file but with fewer seeds than the "
                     "grid's, so not reported; a rerun of the benchmark completes them:\n\n"
                     + "\n".join(f"- {line}" for line in left_out) + "\n")
    data["incomplete"] = left_out
    name = Path(args.results).stem  # quality, or another grid's own file (quality_issue26)
    plot_cells(runs, docs / "figures" / f"{name}_cells.png")
    markdown += f"\n![accuracy per cell](../figures/{name}_cells.png)\n"
    if plot_factorial(data["comparisons"], docs / "figures" / f"{name}_factorial.png"):
        markdown += f"\n![factorial](../figures/{name}_factorial.png)\n"
    (docs / "results" / f"{name}.md").write_text(markdown)
    # The main grid's summary ships with the package: `tadistill demo` compares its one seed with it.
    summary = REPO / "tadistill" / "resources" / "quality_summary.json" if name == "quality" else \
        docs / "results" / f"{name}_summary.json"
    summary.write_text(json.dumps(data, indent=2))
    write_cascade_synthetic(runs, docs / "results" / "cascade.json")
    if args.readme:
        path = Path(args.readme)
        path.write_text(replace_between(path.read_text(), f"<!-- {name}:begin -->", f"<!-- {name}:end -->",
                                        readme_table(runs, data["comparisons"])))
    print(markdown)


if __name__ == "__main__":
    main()
