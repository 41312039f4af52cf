"""The embedded synthetic task written as JSONL data files: read like any user's data."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import DataConfig
from ..synthetic.problems import Problem, generate_problems, problem_id

SYNTHETIC_TASK = "synthetic-arithmetic"


def write_synthetic_source(config: DataConfig, folder: Path) -> DataConfig:
    """Write train/test JSONL files; return the data config that reads them with the generic reader."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = synthetic_splits(config)
    files = {}
    for split, problems in splits.items():
        path = folder / f"{split}.jsonl"
        with path.open("w") as handle:
            for p in problems:
                handle.write(json.dumps({"id": problem_id(p), "question": p.question(), "answer": p.answer}) + "\n")
        files[split] = [str(path)]
    return DataConfig.model_validate({
        **config.model_dump(), "source": "files", "files": files, "root": ".", "format": "jsonl", "preset": None,
        "fields": {"id": "id", "question": "question", "answer": "answer"},
        "answer_type": "number", "task": SYNTHETIC_TASK,
    })


def synthetic_splits(config: DataConfig) -> dict[str, list[Problem]]:
    """The synthetic task's problems per split, a pure function of data.synthetic.

    Short problems repeat by chance: each split keeps only questions no earlier split has, so
    no test question is also in the pool.
    """
    syn = config.synthetic
    seen: set[str] = set()
    splits = {
        "test": _unique(syn.test_size, syn.seed + 1, syn, seen),
        config.pool_split: _unique(syn.pool_size, syn.seed, syn, seen),
    }
    if syn.validation_size:  # for choosing training settings without looking at the test split
        splits["validation"] = _unique(syn.validation_size, syn.seed + 3, syn, seen)
    return splits


def _unique(count: int, seed: int, syn, seen: set[str]) -> list[Problem]:
    """The first `count` problems of the generator's stream for `seed` whose ids are new."""
    draws = count
    while True:
        kept, ids = [], set()
        for problem in generate_problems(draws, seed, syn.min_steps, syn.max_steps):
            key = problem_id(problem)
            if key in seen or key in ids:
                continue
            kept.append(problem)
            ids.add(key)
            if len(kept) == count:
                seen |= ids
                return kept
        draws *= 2  # the stream for a seed is the same prefix, only longer
