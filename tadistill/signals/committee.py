"""Committee disagreement (query by committee, scored as BALD's mutual information: Houlsby et al.
2011; Cache & Distil, Findings ACL 2024, for distilling LLM labels): which questions would one more
teacher output settle, as opposed to those no student can learn from what was bought yet?

The members are students trained from the base student on bootstrap resamples of what was bought
so far (the round students' settings, one resample and seed each), and each samples
`inference.num_samples` answers to every candidate. A candidate's disagreement is the mutual
information between its answer and the member who gave it:

    H(the answers of all members pooled) - mean over members of H(that member's answers)

It is high where members answer confidently but differently: which outputs a student happened to
learn decides its answer there, so one more output moves it. It is 0 where every member answers
alike, whether all are sure (settled) or all are unsure in the same way: a question none of them
can learn from the data so far, which one student's inconsistency alone would call worth buying.
An unextractable answer counts as an answer of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

UNANSWERED = "\x00unanswered"  # no answer could be read: one outcome of its own
FEWEST_BOUGHT = 6  # below this a bootstrap resample is mostly the same few outputs


def bootstrap_resamples(n: int, members: int, seed: int) -> list[np.ndarray]:
    """Per member, the positions of a resample of n bought outputs drawn with replacement."""
    rng = np.random.default_rng((seed, 104729))  # draws of their own: the round's other randomness is untouched
    return [rng.integers(0, n, size=n) for _ in range(members)]


def _entropy(answers: pd.Series) -> float:
    shares = answers.value_counts(normalize=True).to_numpy(dtype=float)
    return float(-(shares * np.log(shares)).sum())


def disagreement(answers: pd.DataFrame) -> pd.DataFrame:
    """From each member's sampled answers (id, member, answer; the same number of samples for each
    member and question), per question id: the mutual information between answer and member
    (`disagreement`, in nats), the entropy of the pooled answers and the members' mean entropy."""
    outcome = answers["answer"].astype(object).where(answers["answer"].notna(), UNANSWERED).astype(str)
    frame = answers.assign(answer=outcome)
    pooled = frame.groupby("id")["answer"].agg(_entropy)
    members = frame.groupby(["id", "member"])["answer"].agg(_entropy).groupby(level="id").mean()
    # Equal samples per member: the pooled answers are the members' mixture, whose entropy is
    # never below their mean (up to float error, clipped).
    table = pd.DataFrame({"pooled_entropy": pooled, "member_entropy": members.reindex(pooled.index)})
    table["disagreement"] = (table["pooled_entropy"] - table["member_entropy"]).clip(lower=0.0)
    return table.rename_axis("id").reset_index()


def purchase_priority(measured: pd.Series, seed: int) -> pd.Series:
    """The most disputed first; ties (most candidates where no member disagrees) in a seeded random
    order, not by id: the disagreement's dense rank outweighs any tie-break."""
    ties = np.random.default_rng((seed, 7)).permutation(len(measured))
    dense = measured.astype(float).rank(method="dense").to_numpy()
    return pd.Series(dense * (len(measured) + 1) + ties, index=measured.index)


@dataclass
class Committee:
    """What the committee measured: per candidate its disagreement, and how it was built."""

    table: pd.DataFrame  # id, disagreement, pooled_entropy, member_entropy
    members: int
    outputs: int  # bought outputs each member resampled

    def said(self) -> str:
        """One line for the report: what was measured and how the round buys."""
        disputed = float((self.table["disagreement"] > 1e-12).mean()) if len(self.table) else 0.0
        return (f"{self.members} students on bootstrap resamples of {self.outputs} bought outputs disagree on "
                f"{disputed:.0%} of {len(self.table)} candidates (mean mutual information "
                f"{self.table['disagreement'].mean():.3f} nats, largest {self.table['disagreement'].max():.3f}): "
                "bought the most disputed first")
