"""Student accuracy on the held-out test split: greedy answers through the run's executor
(inference/executor.py), so they use the configured launcher, backend, CPUs and GPUs. And the
labelled probe a run measures its own students on (the final pick, a rule that measures
progress): the run's outputs known to be right, never pool or test gold."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .artifacts import ANSWERS, CALIBRATION, ROWS
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


def checked_questions(references: pd.DataFrame, answer_type: str) -> pd.DataFrame:
    """The run's outputs known to be right (the trust calibration's references) as questions with
    gold answers, taken from the answer each reference states; references whose answer cannot be
    read are left out."""
    from .tasks.answers import extract_answer

    gold = [extract_answer(text, answer_type) for text in references["text"]]
    frame = pd.DataFrame({"id": references["id"], "question": references["question"], "gold": gold,
                          "answer_type": answer_type, "options": None})
    return frame[frame["gold"].notna()].reset_index(drop=True)


def labelled_probe(ctx: "RunContext") -> pd.DataFrame:
    """The run's labelled probe: its outputs known to be right (the trust calibration's references)
    as questions with gold answers, in the task's answer type as the corpus step read it."""
    answer_type = str(ctx.run_dir.read_table(ROWS)["answer_type"].mode().iloc[0])
    return checked_questions(ctx.run_dir.read_table(CALIBRATION), answer_type)


def probe_correct(ctx: "RunContext", probe: pd.DataFrame, model_path: str) -> pd.Series:
    """Whether a model answers each probe question right, in the probe's order."""
    answered = answer_test_set(probe, model_path, ctx.config.eval, ctx.executor)
    return probe["id"].map(answered.set_index("id")["correct"]).fillna(False).astype(bool)
