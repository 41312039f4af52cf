"""Student accuracy on the held-out test split: greedy answers through Ray Data."""

from __future__ import annotations

import pandas as pd

from .config import EvalConfig
from .inference.drive import map_with_actor
from .tasks.answers import extract_for_row
from .tasks.prompts import student_prompt

EVAL_NUM_CPUS = 1.0


class GreedyAnswers:
    """A Ray Data UDF holding one copy of the student: (id, question, ...) -> text, answer."""

    def __init__(self, model_path: str, max_new_tokens: int, answer_fallback: str = "none"):
        from .inference.backend import TransformersBackend

        self.answer_fallback = answer_fallback
        self.backend = TransformersBackend(model_path)
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [student_prompt(q) for q in batch["question"]]
        texts = [s[0] for s in self.backend.generate(prompts, 1, 0.0, self.max_new_tokens)]
        out = batch[["id", "gold", "answer_type"]].copy()
        out["text"] = texts
        out["answer"] = [extract_for_row(t, a, o, self.answer_fallback) for t, a, o in zip(texts, batch["answer_type"], batch["options"])]
        return out


def answer_test_set(test: pd.DataFrame, model_path: str, config: EvalConfig, answer_fallback: str = "none",
                    in_process: bool = False) -> pd.DataFrame:
    """Greedy answers to the test questions, through a Ray Data actor (or in this process)."""
    answered = map_with_actor(
        test[["id", "question", "gold", "answer_type", "options"]], GreedyAnswers, config.batch_size,
        num_cpus=EVAL_NUM_CPUS,
        constructor_kwargs={"model_path": model_path, "max_new_tokens": config.max_new_tokens,
                            "answer_fallback": answer_fallback},
        in_process=in_process,
    )
    answered["correct"] = answered["answer"].notna() & (answered["answer"] == answered["gold"])
    return answered.sort_values("id").reset_index(drop=True)


def accuracy(answered: pd.DataFrame) -> dict:
    return {
        "accuracy": float(answered["correct"].mean()) if len(answered) else 0.0,
        "correct": int(answered["correct"].sum()),
        "total": int(len(answered)),
        "unextractable": int(answered["answer"].isna().sum()),
    }
