"""Signals from student samples and TA scores, and what they decide.

- self-consistency of a question: how far the student's N sampled answers agree;
- TA confidence in the student: mean TA confidence over the N samples;
- TA confidence in the teacher: the TA's confidence in the bought teacher output.

What the signals decide lives beside them: selection rules in signals/selection.py, trust in
the teacher's outputs in signals/trust.py. Self-consistency measures live here
(`signals.consistency` picks one): a new one is one function here, its line in the config's
choice table (config/choices.py) and its test.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import pandas as pd

from ..config import choices

if TYPE_CHECKING:
    from ..config import SignalsConfig


def agreement(answers: Sequence[Optional[str]]) -> float:
    """Share of samples agreeing with the majority answer; unextractable answers never agree."""
    if not answers:
        return 0.0
    counts = Counter(a for a in answers if a is not None)
    return (counts.most_common(1)[0][1] / len(answers)) if counts else 0.0


def answer_entropy_consistency(answers: Sequence[Optional[str]]) -> float:
    """1 - entropy of the answer distribution / log(N); each unextractable answer is its own class."""
    n = len(answers)
    if n <= 1:
        return 1.0 if n == 1 and answers[0] is not None else 0.0
    labels = [a if a is not None else f"<none-{i}>" for i, a in enumerate(answers)]
    probs = np.array(list(Counter(labels).values()), dtype=float) / n
    return float(1.0 - (-(probs * np.log(probs)).sum()) / math.log(n))


def question_signals(samples: pd.DataFrame, config: "SignalsConfig", pass_level: Optional[float] = None) -> pd.DataFrame:
    """Per question: self_consistency, ta_conf_student, majority answer, sample count, and with a
    `pass_level` the share of samples whose TA confidence reaches it (ta_pass_share; else NaN).

    samples: id, k, answer, ta_conf (one row per student sample).
    """
    measure = choices.load("signals.consistency", config.consistency)
    rows = []
    for row_id, group in samples.groupby("id", sort=True):
        answers = [a if isinstance(a, str) else None for a in group["answer"]]
        counts = Counter(a for a in answers if a is not None)
        rows.append({
            "id": row_id,
            "self_consistency": measure(answers),
            "ta_conf_student": float(group["ta_conf"].mean()),
            "student_majority": counts.most_common(1)[0][0] if counts else None,
            "num_samples": len(group),
            "ta_pass_share": float((group["ta_conf"] >= pass_level).mean()) if pass_level is not None else np.nan,
        })
    return pd.DataFrame(rows, columns=["id", "self_consistency", "ta_conf_student", "student_majority", "num_samples",
                                       "ta_pass_share"])
