"""`tadistill data inspect`: what a corpus (and a recorded teacher) holds, before a run pays for anything.

Rows per split (rows in = kept + rejected), answer-type statistics, rejects grouped by
reason with a place to look, and the recorded teacher's answer accuracy against gold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from ..config import SYNTHETIC, Config
from ..config import choices
from ..tables import markdown_table
from .read import Corpus, read_corpus
from .synthetic import write_synthetic_source


def _split_table(corpus: Corpus) -> pd.DataFrame:
    rows = corpus.rows
    table = []
    for split, count in corpus.counts.items():
        kept = rows[rows["split"] == split]
        table.append({
            "split": split, "rows in": count["rows_in"], "kept": count["kept"], "rejected": count["rejected"],
            "reject share": count["rejected"] / count["rows_in"] if count["rows_in"] else 0.0,
            "with gold": int(kept["gold"].notna().sum()),
        })
    return pd.DataFrame(table)


def _answer_table(corpus: Corpus) -> pd.DataFrame:
    table = []
    for (split, answer_type), kept in corpus.rows.groupby(["split", "answer_type"], sort=False):
        gold = kept["gold"].dropna()
        options = kept["options"].map(lambda o: 0 if o is None else len(o))
        common = ", ".join(f"{value} ({n})" for value, n in gold.value_counts().head(5).items())
        table.append({
            "split": split, "answer type": answer_type, "rows": len(kept), "distinct gold": gold.nunique(),
            "commonest gold": common or "-", "options per question": _span(options) if answer_type in ("choice", "label") else "-",
            "question words (median)": int(kept["stem"].map(lambda t: len(t.split())).median()),
        })
    return pd.DataFrame(table)


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def _reject_table(corpus: Corpus) -> pd.DataFrame:
    rejects = corpus.rejects
    if rejects.empty:
        return rejects
    grouped = rejects.groupby(["split", "reason"], sort=False)
    return pd.DataFrame([
        {"split": split, "reason": reason, "rows": len(group),
         "first rows": ", ".join(f"{Path(f).name}:{r}" for f, r in zip(group["source_file"][:3], group["row"][:3]))}
        for (split, reason), group in grouped
    ]).sort_values("rows", ascending=False)


def inspect_data(config: Config) -> tuple[str, dict]:
    """(Markdown report, summary) of the corpus and, for a recorded teacher, its outputs."""
    data = config.data
    with tempfile.TemporaryDirectory() as tmp:
        if data.source == SYNTHETIC:
            data = write_synthetic_source(data, Path(tmp))
        corpus = read_corpus(data)
    lines = [f"# Data: {data.task or data.preset or 'custom'}", ""]
    lines += ["## Rows per split", "", markdown_table(_split_table(corpus)), ""]
    summary: dict = {"splits": corpus.counts}
    try:
        corpus.check_reject_share(data.max_reject_share, "the table below")
    except ValueError as exc:
        lines += [f"**A run would stop here:** {exc}", ""]
        summary["run_would_stop"] = str(exc)
    if len(corpus.rows):
        lines += ["## Answers", "", markdown_table(_answer_table(corpus)), ""]
    lines += [f"## Rejects ({len(corpus.rejects)})", ""]
    lines += [markdown_table(_reject_table(corpus)), ""] if len(corpus.rejects) else ["None.", ""]
    teacher_lines, teacher_summary = choices.load("teacher.source", config.teacher.source).inspect(config, corpus.rows)
    lines += teacher_lines
    summary.update(teacher_summary)
    return "\n".join(lines), summary
