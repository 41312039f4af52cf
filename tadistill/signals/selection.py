"""Stage-2 selection rules, registered by name: `selection.strategy` picks one.

A rule gives every candidate question a priority (higher is bought first, ties broken by id)
from its signals (signals/compute.py: self_consistency, ta_conf_student). Adding a rule is one
class here, decorated with `@register`, and its test; the config's choices, the pipeline (which
skips sampling and scoring for a rule that needs no signals) and the report read this registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from ..registry import Registry

if TYPE_CHECKING:  # the config imports this registry for its choices
    from ..config import SignalsConfig


class SelectionRule:
    name: ClassVar[str]
    summary: ClassVar[str]
    uses_signals: ClassVar[bool] = True  # False: the student's samples and their scores are not needed

    def priority(self, signals: pd.DataFrame, config: "SignalsConfig", seed: int) -> pd.Series:
        raise NotImplementedError


SELECTION_RULES = Registry("selection rule")
register = SELECTION_RULES.register


def rule_named(name: str) -> SelectionRule:
    return SELECTION_RULES.named(name, "selection.strategy")()


def rank_normalise(values: pd.Series) -> pd.Series:
    """Average ranks scaled to [0, 1]; ties share a rank; a single value maps to 0.5."""
    if len(values) <= 1:
        return pd.Series(0.5, index=values.index)
    return (values.rank(method="average") - 1) / (len(values) - 1)


@register
class RandomPick(SelectionRule):
    name = "random"
    summary = "a seeded random pick among the candidates (the two-stage schedule alone)"
    uses_signals = False

    def priority(self, signals, config, seed):
        return pd.Series(np.random.default_rng(seed).random(len(signals)), index=signals.index)


@register
class UnsureFirst(SelectionRule):
    """The paper's reading: buy where the student is least sure of itself."""

    name = "signals"
    summary = ("where the student is least sure: w_sc x (1 - self-consistency) + w_ta x (1 - TA confidence in "
               "the student's samples), each rank-normalised so their scales never matter")

    def priority(self, signals, config, seed):
        total = config.w_sc + config.w_ta
        if total == 0:
            raise ValueError("signals.w_sc and signals.w_ta are both 0: nothing to select by")
        sc = rank_normalise(signals["self_consistency"])
        ta = rank_normalise(signals["ta_conf_student"])
        return (config.w_sc * (1 - sc) + config.w_ta * (1 - ta)) / total


@register
class UnsureButLearnable(SelectionRule):
    """Unsure first, and among equally unsure questions the ones the TA finds closest to right.

    Self-consistency over a few samples takes few values (5 with 4 samples), so most candidates
    tie on it. The TA's confidence in the student's own samples breaks the ties towards questions
    where the student's attempts are nearly right: learnable from one teacher output, where the
    teacher itself is less often wrong than on the hardest questions.
    """

    name = "learnable"
    summary = ("lowest self-consistency first; ties broken by the highest TA confidence in the student's samples "
               "(unsure but learnable; w_sc and w_ta are not used)")

    def priority(self, signals, config, seed):
        unsure = (-signals["self_consistency"].astype(float)).rank(method="dense")
        learnable = signals["ta_conf_student"].astype(float).rank(method="dense")
        # Lexicographic: a dense rank of the tie-break never exceeds len + 1, so it never
        # outweighs one step of unsureness.
        return unsure * (len(signals) + 1) + learnable

def select(signals: pd.DataFrame, count: int, strategy: str, config: "SignalsConfig", seed: int) -> pd.DataFrame:
    """Mark the `count` candidates of highest priority under the named rule `selected` (ties by id)."""
    out = signals.copy()
    out["score"] = rule_named(strategy).priority(out, config, seed)
    order = out.sort_values(["score", "id"], ascending=[False, True]).index[: max(0, count)]
    out["selected"] = False
    out.loc[order, "selected"] = True
    return out
