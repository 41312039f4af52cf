"""What the signals did in the quality benchmark's runs, read back from their run directories.

    .venv/bin/python -m bench.quality.diagnose [bench/results/quality/runs] [--out docs/results]

Per cell and method (mean over seeds):

- trust: AUROC of the TA's confidence for right against wrong bought outputs; the mean weight of
  right outputs (1.0 = a right teacher left alone) and of wrong ones; the wrong outputs' share of
  the purchase and of the loss;
- selection: the steps of the stage-2 picks against the candidates left, how often the warm-up
  student's majority answer was already right on the picks and on those left (a useful pick is
  one the student gets wrong), and the teacher's error on the picks against on those left.

Writes quality_diagnostics.json and quality_diagnostics.md under --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from .bench import REPO, _steps_of, final_trust_path, output_stats


def _corpus(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "corpus" / "rows.parquet", columns=["id", "question", "gold"]).set_index("id")


def trust_stats(run: Path, corpus: pd.DataFrame) -> dict:
    path = final_trust_path(run)
    if path is None or not path.exists():
        return {}
    return output_stats(pd.read_parquet(path), corpus["gold"])


def selection_stats(run: Path, corpus: pd.DataFrame, teacher_records: Path | None) -> dict:
    from tadistill.config import SignalsConfig
    from tadistill.signals.compute import question_signals

    chosen_path = run / "round1" / "question_signals.parquet"  # the first round's picks
    samples_path = run / "round1" / "samples_scored.parquet"
    if not chosen_path.exists():
        return {}
    chosen = pd.read_parquet(chosen_path).set_index("id")
    picked = chosen["selected"].astype(bool)
    steps = chosen.index.map(corpus["question"].map(_steps_of)).to_numpy()
    stats = {"picked_mean_steps": float(steps[picked].mean()), "left_mean_steps": float(steps[~picked].mean())}
    if samples_path.exists():
        majority = question_signals(pd.read_parquet(samples_path), SignalsConfig()).set_index("id")["student_majority"]
        majority = majority.reindex(chosen.index)
        student_right = (majority.notna() & (majority == chosen.index.map(corpus["gold"]))).to_numpy(dtype=bool)
        stats.update(student_right_on_picked=float(student_right[picked].mean()),
                     student_right_on_left=float(student_right[~picked].mean()))
    if teacher_records is not None and teacher_records.exists():
        from tadistill.tasks.answers import extract_number

        records = pd.read_json(teacher_records, lines=True).set_index("id")
        wrong = records.reindex(chosen.index)["rationale"].map(extract_number).to_numpy() != \
            chosen.index.map(corpus["gold"]).to_numpy()
        stats.update(teacher_error_on_picked=float(wrong[picked].mean()), teacher_error_on_left=float(wrong[~picked].mean()))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", default=str(REPO / "bench" / "results" / "quality" / "runs"))
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    args = parser.parse_args()
    runs = Path(args.runs)
    teachers = runs.parent / "teachers"
    rows = []
    for cell in sorted(p for p in runs.iterdir() if p.is_dir()):
        world, rate, budget = cell.name.rsplit("_", 2)[0], cell.name.split("_err")[1].split("_b")[0], cell.name.rsplit("_b", 1)[1]
        for seed_dir in sorted(cell.glob("seed*")):
            for run in sorted(p for p in seed_dir.iterdir() if (p / "eval").exists()):
                corpus = _corpus(run)
                record = teachers / f"{world}-error{rate}.jsonl"
                rows.append({"world": world, "error_rate": float(rate), "budget": int(budget),
                             "seed": int(seed_dir.name[4:]), "method": run.name,
                             **trust_stats(run, corpus), **selection_stats(run, corpus, record)})
    frame = pd.DataFrame(rows)
    table = frame.drop(columns=["seed"]).groupby(["world", "error_rate", "budget", "method"], sort=True).mean().reset_index()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_diagnostics.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2, default=float))
    from tadistill.tables import markdown_table

    shown = table.round(3).astype(object).where(table.notna(), "-")
    text = ("# Quality benchmark: what the signals did\n\nMeans over seeds, from the run directories "
            "(`python -m bench.quality.diagnose`).\n\n" + markdown_table(shown) + "\n")
    (out / "quality_diagnostics.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
