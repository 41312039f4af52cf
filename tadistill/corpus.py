"""The corpus: questions read with Ray Data into canonical rows, split into pool and test.

Canonical row: id, task, question, choices (null), gold (null in an unlabelled pool),
answer_type, split. A row that cannot be used goes to the rejects table with its reason;
it is counted, never dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import ray

from .config import DataConfig
from .synthetic.problems import generate_problems, problem_id

CANONICAL_COLUMNS = ["id", "task", "question", "choices", "gold", "answer_type", "split"]
REJECT_COLUMNS = ["source_file", "row", "id", "reason"]


def write_synthetic_source(config: DataConfig, folder: Path) -> list[Path]:
    """The synthetic task as JSONL files, one per split: the same shape a user's data has."""
    folder.mkdir(parents=True, exist_ok=True)
    syn = config.synthetic
    splits = {
        "test": generate_problems(syn.test_size, syn.seed + 1, syn.min_steps, syn.max_steps),
        "pool": generate_problems(syn.pool_size, syn.seed, syn.min_steps, syn.max_steps),
    }
    paths = []
    for split, problems in splits.items():
        path = folder / f"{split}.jsonl"
        with path.open("w") as handle:
            for p in problems:
                handle.write(json.dumps({"id": problem_id(p), "question": p.question(), "answer": p.answer, "split": split}) + "\n")
        paths.append(path)
    return paths


def _canonicalise(batch: pd.DataFrame) -> pd.DataFrame:
    """Raw synthetic rows -> canonical rows, or a reject reason in `reject`."""
    out = pd.DataFrame({
        "id": batch["id"].astype(str),
        "task": "synthetic-arithmetic",
        "question": batch["question"].astype(str).str.strip(),
        "choices": None,
        "gold": batch["answer"].map(lambda a: None if pd.isna(a) else str(int(a))),
        "answer_type": "number",
        "split": batch["split"].astype(str),
        "source_file": batch["path"].map(lambda p: Path(p).name) if "path" in batch else "?",
    })
    reasons = pd.Series("", index=out.index)
    reasons[out["question"] == ""] = "empty question"
    reasons[(out["split"] == "test") & out["gold"].isna()] = "test row without a gold answer"
    out["reject"] = reasons
    return out


def read_corpus(source_files: list[Path], num_blocks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read with Ray Data; return (canonical rows, rejects)."""
    ds = ray.data.read_json([str(p) for p in source_files], include_paths=True, override_num_blocks=num_blocks)
    rows = ds.map_batches(_canonicalise, batch_format="pandas").to_pandas()
    rows["row"] = rows.groupby("source_file").cumcount()
    # Test rows first, so a question that is in both splits stays a test question.
    rows = rows.sort_values("split", key=lambda s: s != "test", kind="stable").reset_index(drop=True)
    # An id seen twice is ambiguous for the cache and the signals: keep the first, reject the rest.
    duplicated = rows["id"].duplicated(keep="first") & (rows["reject"] == "")
    rows.loc[duplicated, "reject"] = "duplicate id"
    bad = rows["reject"] != ""
    rejects = rows.loc[bad, ["source_file", "row", "id", "reject"]].rename(columns={"reject": "reason"})
    kept = rows.loc[~bad, CANONICAL_COLUMNS].sort_values(["split", "id"]).reset_index(drop=True)
    return kept, rejects.reset_index(drop=True)
