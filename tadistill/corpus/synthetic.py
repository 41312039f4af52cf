"""The embedded synthetic task written as JSONL data files: read like any user's data."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import DataConfig
from ..synthetic.problems import generate_problems, problem_id

SYNTHETIC_TASK = "synthetic-arithmetic"


def write_synthetic_source(config: DataConfig, folder: Path) -> DataConfig:
    """Write train/test JSONL files; return the data config that reads them with the generic reader."""
    folder.mkdir(parents=True, exist_ok=True)
    syn = config.synthetic
    splits = {
        config.test_split: generate_problems(syn.test_size, syn.seed + 1, syn.min_steps, syn.max_steps),
        config.pool_split: generate_problems(syn.pool_size, syn.seed, syn.min_steps, syn.max_steps),
    }
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
