"""Signals from student samples and TA scores, and what they decide.

- self-consistency of a question: how far the student's N sampled answers agree;
- TA confidence in the student: mean TA confidence over the N samples;
- TA confidence in the teacher: the TA's confidence in the bought teacher output.

Signals are rank-normalised before they are combined, so their scales never matter.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..config import SignalsConfig, TrustConfig


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


def rank_normalise(values: pd.Series) -> pd.Series:
    """Average ranks scaled to [0, 1]; ties share a rank; a single value maps to 0.5."""
    if len(values) <= 1:
        return pd.Series(0.5, index=values.index)
    return (values.rank(method="average") - 1) / (len(values) - 1)


def question_signals(samples: pd.DataFrame, config: SignalsConfig) -> pd.DataFrame:
    """Per question: self_consistency, ta_conf_student, majority answer, sample count.

    samples: id, k, answer, ta_conf (one row per student sample).
    """
    measure = agreement if config.consistency == "agreement" else answer_entropy_consistency
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
        })
    return pd.DataFrame(rows, columns=["id", "self_consistency", "ta_conf_student", "student_majority", "num_samples"])


def selection_score(signals: pd.DataFrame, config: SignalsConfig) -> pd.Series:
    """Higher = the student is less sure = the teacher's answer is worth more."""
    sc = rank_normalise(signals["self_consistency"])
    ta = rank_normalise(signals["ta_conf_student"])
    total = config.w_sc + config.w_ta
    if total == 0:
        raise ValueError("signals.w_sc and signals.w_ta are both 0: nothing to select by")
    return (config.w_sc * (1 - sc) + config.w_ta * (1 - ta)) / total


def select(signals: pd.DataFrame, count: int, strategy: str, config: SignalsConfig, seed: int) -> pd.DataFrame:
    """Mark `count` questions `selected`, by score (ties broken by id) or at random."""
    out = signals.copy()
    if strategy == "random":
        rng = np.random.default_rng(seed)
        out["score"] = rng.random(len(out))
    else:
        out["score"] = selection_score(out, config)
    order = out.sort_values(["score", "id"], ascending=[False, True]).index[: max(0, count)]
    out["selected"] = False
    out.loc[order, "selected"] = True
    return out


def trust_weights(ta_conf_teacher: pd.Series, config: TrustConfig,
                  reference: Optional[np.ndarray] = None) -> pd.Series:
    """Per bought teacher output: its weight in the loss (0 drops it).

    With trust.scale 'calibrated', `reference` holds the TA's confidence in outputs known to
    be right: an output is placed by where its confidence falls among those (the share of
    right outputs less confident than it), so a teacher that is always right keeps nearly all
    of its weight. With 'rank', outputs are ranked against each other within the purchase.
    """
    if config.mode == "none" or len(ta_conf_teacher) == 0:
        return pd.Series(1.0, index=ta_conf_teacher.index)
    if config.scale == "auto":
        raise ValueError("trust.scale 'auto' is resolved by the run's config (Config.trust_scale) before weighting")
    if config.scale == "calibrated":
        if reference is None or len(reference) == 0:
            raise ValueError("trust.scale 'calibrated' needs the TA's confidence in outputs known to be right")
        # Share of right outputs at most this confident: the empirical CDF of the reference.
        share = np.searchsorted(np.sort(np.asarray(reference, dtype=float)), ta_conf_teacher.to_numpy(),
                                side="right") / len(reference)
        q = config.calibration_quantile
        if config.mode == "filter":
            return pd.Series((share >= q).astype(float), index=ta_conf_teacher.index)
        trusted = np.minimum(1.0, share / q)
        return pd.Series(config.min_weight + (1 - config.min_weight) * trusted, index=ta_conf_teacher.index)
    ranks = rank_normalise(ta_conf_teacher)
    if config.mode == "filter":
        return (ranks >= config.filter_quantile).astype(float)
    return config.min_weight + (1 - config.min_weight) * ranks
