"""Student accuracy on the held-out test split: greedy answers through the run's executor
(inference/executor.py), so they use the configured launcher, backend, CPUs and GPUs."""

from __future__ import annotations

import pandas as pd

from .config import EvalConfig
from .inference.executor import Executor


def answer_test_set(test: pd.DataFrame, model_path: str, config: EvalConfig, executor: Executor) -> pd.DataFrame:
    """Greedy answers to the test questions: id, gold, answer_type, text, answer, correct."""
    return executor.answer(model_path, test, config.max_new_tokens, config.batch_size)


def accuracy(answered: pd.DataFrame) -> dict:
    return {
        "accuracy": float(answered["correct"].mean()) if len(answered) else 0.0,
        "correct": int(answered["correct"].sum()),
        "total": int(len(answered)),
        "unextractable": int(answered["answer"].isna().sum()),
    }
