"""A learnt trust signal: a logistic regression over the other signals (the TA's whole-output
likelihood and answer confidence, as logs since they span orders of magnitude; length; the
arithmetic check on number tasks; teacher agreement where questions have several rationales),
fitted on the gold-labelled teacher outputs of trust.calibration_split. Its value is the
probability that an output is right.

The labelled outputs are valued cross-fitted (5 folds: none by a model fitted on it), which is what
the 'calibrated' scale places trust on; the penalty is the one whose cross-fitted values rank them
best. How it does on real teachers beside each signal alone: the README's trust-signal table
(bench/real/trust_signals.py fits the same regression).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from ..logistic import Logistic, choose_l2, cross_fitted, fit_logistic
from . import SignalValues, TrustSignal
from .agreement import agreement_shares
from .answer_confidence import AnswerConfidence
from .arithmetic import ArithmeticCheck
from .length import Length
from .ta_likelihood import TALikelihood

LOGGED = ("ta_likelihood", "answer_confidence")  # probabilities: their logs enter the regression
INTERCEPT = "intercept"
FEWEST_OF_A_CLASS = 5  # below this many right (or wrong) labelled outputs nothing is learnt


@dataclass
class Learnt:
    model: pd.DataFrame  # LEARNED's rows: feature, weight, mean, scale (the intercept last)
    values: np.ndarray  # each labelled output's cross-fitted probability of being right
    ta_scored: int
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def feature_names(labelled: pd.DataFrame) -> list[str]:
    """The inputs the labelled outputs support: arithmetic for number answers, agreement where
    a question has several rationales."""
    names = ["length", "ta_likelihood", "answer_confidence"]
    if labelled["answer_type"].eq("number").all():
        names.append("arithmetic")
    if labelled.groupby("id")["k"].count().max() > 1:
        names.append("teacher_agreement")
    return names


def features(outputs: pd.DataFrame, names: list[str], score) -> tuple[np.ndarray, int]:
    """(one column per named input, TA scorings spent)."""
    columns, scored = [], 0
    for name in names:
        if name == "length":
            values = Length().values(outputs, None).values
        elif name == "arithmetic":
            values = ArithmeticCheck().values(outputs, None).values
        elif name == "teacher_agreement":
            values = agreement_shares(outputs)
        else:
            valued = (TALikelihood() if name == "ta_likelihood" else AnswerConfidence()).values(outputs, score)
            values, scored = valued.values, scored + valued.ta_scored
        values = values.to_numpy(dtype=float)
        columns.append(np.log(np.maximum(values, 1e-12)) if name in LOGGED else values)
    return np.column_stack(columns), scored


class Combined(TrustSignal):
    def __init__(self, model: Optional[pd.DataFrame] = None):
        self.model = model

    def learn(self, labelled: pd.DataFrame, score, tools=None) -> Learnt:
        """Fit on labelled outputs (id, k, question, text, answer, answer_type, right)."""
        names = feature_names(labelled)
        x, scored = features(labelled, names, score)
        right = labelled["right"].to_numpy(dtype=bool)
        fewest = int(min(right.sum(), (~right).sum()))
        if fewest < FEWEST_OF_A_CLASS:
            # Nothing to tell apart: one value for every output, so trust weights nothing down.
            share = float(np.clip(right.mean(), 1e-3, 1 - 1e-3))
            logistic = Logistic(np.r_[np.zeros(len(names)), np.log(share / (1 - share))], np.zeros(len(names)),
                                np.ones(len(names)))
            note = (f"{int(right.sum())} right and {int((~right).sum())} wrong labelled outputs: too few of one kind "
                    f"(fewer than {FEWEST_OF_A_CLASS}) to learn from; every output gets the same trust")
            return Learnt(_table(names, logistic), logistic.probabilities(x), scored,
                          {"right": int(right.sum()), "wrong": int((~right).sum())}, [note])
        l2 = choose_l2(x, right)
        logistic = fit_logistic(x, right, l2)
        values = 1 / (1 + np.exp(-np.clip(cross_fitted(x, right, l2), -30, 30)))
        from ...tables import auroc

        summary = {"right": int(right.sum()), "wrong": int((~right).sum()), "l2": l2,
                   "cross_fitted_auroc": auroc(values[right], values[~right]),
                   "coefficients": dict(zip(names + [INTERCEPT], np.round(logistic.weights, 4).tolist()))}
        return Learnt(_table(names, logistic), values, scored, summary)

    def values(self, outputs, score):
        if self.model is None:
            raise RuntimeError("the combined trust signal values outputs only after it has learnt (trust.learn)")
        names = [f for f in self.model["feature"] if f != INTERCEPT]
        x, scored = features(outputs, names, score)
        inputs = self.model[self.model["feature"] != INTERCEPT]
        logistic = Logistic(self.model["weight"].to_numpy(dtype=float), inputs["mean"].to_numpy(dtype=float),
                            inputs["scale"].to_numpy(dtype=float))
        return SignalValues(pd.Series(logistic.probabilities(x), index=outputs.index), ta_scored=scored)


def _table(names: list[str], logistic: Logistic) -> pd.DataFrame:
    return pd.DataFrame({"feature": names + [INTERCEPT], "weight": logistic.weights,
                         "mean": np.r_[logistic.mean, 0.0], "scale": np.r_[logistic.scale, 1.0]})
