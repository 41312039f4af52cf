"""What each signal did in a quality-benchmark grid, read back from its run directories.

    .venv/bin/python -m bench.quality.diagnose [bench/results/quality]

Per teacher error rate (mean over budgets and seeds), for the two-stage methods:

- selection: how often the stage-1 student's majority answer was already right on the
  questions its signals picked, against those they left (a useful pick is one the student
  gets wrong), and the teacher's error rate on the picks against the pool's;
- trust: AUROC of TA confidence for right against wrong teacher outputs, and the share of
  the stage-2 loss weight that went to wrong outputs, against their share of the outputs
  (what weighting removed).

Writes diagnostics.json and diagnostics.md next to results.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .bench import REPO, TWO_STAGE


def _gold(run: Path) -> pd.Series:
    return pd.read_parquet(run / "corpus" / "rows.parquet", columns=["id", "gold"]).set_index("id")["gold"]


def selection_stats(run: Path) -> dict | None:
    from tadistill.config import SignalsConfig
    from tadistill.signals.compute import question_signals

    samples_path = run / "signals" / "samples_scored.parquet"
    if not samples_path.exists():
        return None
    # The stage-1 student's majority answers (random selection shares them through its copy).
    majority = question_signals(pd.read_parquet(samples_path), SignalsConfig()).set_index("id")["student_majority"]
    picked = pd.read_parquet(run / "signals" / "question_signals.parquet").set_index("id")["selected"]
    gold = _gold(run)
    student_right = (majority.notna() & (majority == majority.index.map(gold))).reindex(picked.index, fill_value=False)
    bought = pd.read_parquet(run / "trust" / "teacher_weighted.parquet")
    stage2 = bought[bought["stage"] == 2] if "stage" in bought else bought
    teacher_wrong = ~(stage2["answer"].notna() & (stage2["answer"] == stage2["id"].map(gold)))
    return {
        "student_right_on_picked": float(student_right[picked].mean()),
        "student_right_on_left": float(student_right[~picked].mean()) if (~picked).any() else np.nan,
        "teacher_wrong_on_picked": float(teacher_wrong.mean()) if len(stage2) else np.nan,
    }


def trust_stats(run: Path) -> dict | None:
    from tadistill.report import auroc

    path = run / "trust" / "teacher_weighted.parquet"
    if not path.exists():
        return None
    weighted = pd.read_parquet(path)
    if weighted["ta_conf_teacher"].isna().all():
        return None  # trust.mode none
    gold = _gold(run)
    right = weighted["answer"].notna() & (weighted["answer"] == weighted["id"].map(gold))
    conf, weight = weighted["ta_conf_teacher"], weighted["weight"]
    return {
        "auroc": auroc(conf[right].to_numpy(), conf[~right].to_numpy()),
        "wrong_share_of_outputs": float((~right).mean()),
        "wrong_share_of_weight": float(weight[~right].sum() / weight.sum()) if weight.sum() else np.nan,
    }


def diagnose(out: Path) -> pd.DataFrame:
    results = json.loads((out / "results.json").read_text())
    rows = []
    for run in results["runs"]:
        if run["method"] not in TWO_STAGE + ("full_one_stage", "ta_teacher_only"):
            continue
        cell = f"err{run['error_rate']}_b{run['budget']}_s{run['seed']}"
        run_dir = out / "runs" / cell / run["method"]
        row = {"error_rate": run["error_rate"], "budget": run["budget"], "seed": run["seed"], "method": run["method"]}
        row.update(selection_stats(run_dir) or {})
        row.update(trust_stats(run_dir) or {})
        rows.append(row)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("student_right_on_picked", "student_right_on_left", "teacher_wrong_on_picked", "auroc",
                           "wrong_share_of_outputs", "wrong_share_of_weight") if c in frame]
    return frame.groupby(["error_rate", "method"], sort=False)[columns].mean().reset_index()


def main() -> None:
    from tadistill.report import markdown_table

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bench" / "results" / "quality"
    frame = diagnose(out)
    table = summary(frame)
    (out / "diagnostics.json").write_text(json.dumps(frame.to_dict(orient="records"), indent=2, default=str))
    shown = table.copy()
    for column in shown.columns[2:]:
        shown[column] = [f"{v:.3f}" if v == v else "-" for v in shown[column]]
    text = markdown_table(shown)
    (out / "diagnostics.md").write_text("# What the signals did\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
