"""Student accuracy on the held-out test split: greedy answers through the run's executor
(inference/executor.py), so they use the configured launcher, backend, CPUs and GPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .artifacts import ANSWERS, ROWS
from .config import EvalConfig

if TYPE_CHECKING:
    from .context import RunContext
    from .inference.executor import Executor


def answer_test_set(test: pd.DataFrame, model_path: str, config: EvalConfig, executor: "Executor") -> pd.DataFrame:
    """Greedy answers to the test questions: id, gold, answer_type, text, answer, correct."""
    return executor.answer(model_path, test, config.max_new_tokens, config.batch_size)


def accuracy(answered: pd.DataFrame) -> dict:
    return {
        "accuracy": float(answered["correct"].mean()) if len(answered) else 0.0,
        "correct": int(answered["correct"].sum()),
        "total": int(len(answered)),
        "unextractable": int(answered["answer"].isna().sum()),
    }


def step_evaluate(ctx: "RunContext") -> dict:
    """The final student's greedy answers to the test split, and its accuracy."""
    rows = ctx.run_dir.read_table(ROWS)
    test = rows[rows["split"] == ctx.config.data.test_split]
    answered = answer_test_set(test, ctx.final_model_path(), ctx.config.eval, ctx.executor)
    ctx.run_dir.write_table(ANSWERS, answered)
    return {**accuracy(answered), "rows": len(answered)}
