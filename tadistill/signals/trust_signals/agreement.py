"""Teacher agreement: with several rationales per question (teacher.n > 1, or a recorded teacher
that kept several), the share of the question's *other* rationales whose answer agrees with this
output's. An output without an answer agrees with nothing (0); a question with one rationale has
no other to agree with (0.5, undecided)."""

from __future__ import annotations

import pandas as pd

from . import SignalValues, TrustSignal


def agreement_shares(outputs: pd.DataFrame) -> pd.Series:
    shares = pd.Series(0.5, index=outputs.index, dtype=float)
    for _, group in outputs.groupby("id", sort=False):
        if len(group) < 2:
            continue
        counts = group["answer"].value_counts(dropna=True)
        for index, answer in group["answer"].items():
            shares[index] = 0.0 if pd.isna(answer) else (counts[answer] - 1) / (len(group) - 1)
    return shares


def in_majority(outputs: pd.DataFrame) -> pd.Series:
    """Per output, whether its answer is (one of) the most common among its question's rationales;
    an output without an answer never is, unless no rationale of the question has one."""
    def marks(group: pd.DataFrame) -> pd.Series:
        counts = group["answer"].value_counts(dropna=True)
        if counts.empty:
            return pd.Series(True, index=group.index)
        return group["answer"].isin(set(counts[counts == counts.max()].index))

    return pd.concat([marks(group) for _, group in outputs.groupby("id", sort=False)]).reindex(outputs.index)


class TeacherAgreement(TrustSignal):
    def values(self, outputs, score):
        shares = agreement_shares(outputs)
        alone = int((outputs.groupby("id")["id"].transform("size") < 2).sum())
        notes = [f"{alone} output(s) were their question's only rationale (agreement 0.5)"] if alone else []
        return SignalValues(shares, notes=notes)

    def reference(self, known_right, score, ta_conf):
        return None  # outputs known to be right come one a question: nothing to agree with
