"""A regime test (after SelectAL, Hacohen et al. 2023): does this student learn more from hard or
from easy questions than from random ones, measured on its own purchase, before the next one?

What was bought so far is cut into slices by a difficulty known before buying, the question's
length: the longest share, the shortest share, and a random share of the same size. One probe
student per slice trains from the base student on everything bought except that slice (same
seed, same settings: they differ only in the data left out), and each answers the run's labelled
probe. Leaving out a slice that carries more than a random one costs more probe accuracy; the
cost beyond the random slice's, per probe question (paired), is that slice's value. The next
purchase goes to the longest questions where the long slice's value clears `selection.evidence_z`
standard errors, to the shortest where the short slice's does (the larger where both do), and
is random otherwise: a purchase leaves random only on clear evidence.

One probe student per slice means the test sees the probe's noise but not a training's own: the
threshold is the guard, and a random decision costs what `none` costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SLICES = ("long", "short", "random")  # the random slice is what the others are measured against
DECISIONS = {"long": "bought the longest first", "short": "bought the shortest first", "random": "bought at random"}
FEWEST_BOUGHT = 6  # below this, slices of a share of it are too small to say anything


def slices(lengths: pd.Series, share: float, seed: int) -> dict[str, pd.Index]:
    """The index labels left out of each probe student: the longest `share` of what was bought
    (ties by label), the shortest, and a seeded random set of the same size."""
    size = max(1, int(round(share * len(lengths))))
    ordered = pd.DataFrame({"length": lengths.to_numpy(dtype=float), "label": np.arange(len(lengths))},
                           index=lengths.index).sort_values(["length", "label"])
    chosen = np.random.default_rng(seed).permutation(len(lengths))[:size]
    return {"long": ordered.index[-size:], "short": ordered.index[:size], "random": lengths.index[np.sort(chosen)]}


@dataclass
class Regime:
    """What the test measured: per slice left out, probe accuracy, and (long, short) the value
    beyond the random slice with its standard error; and what it decided."""

    table: pd.DataFrame  # slice, left_out, accuracy, value, se
    decision: str  # one of DECISIONS
    z: float

    def said(self) -> str:
        """One line for the report: what was measured and what was decided."""
        rows = self.table.set_index("slice")
        parts = [f"{name} slice left out {rows.loc[name, 'accuracy']:.3f}" for name in SLICES]
        values = [f"value of the {name} slice {rows.loc[name, 'value']:+.3f} ± {rows.loc[name, 'se']:.3f}"
                  for name in ("long", "short")]
        return ", ".join(parts) + "; " + ", ".join(values) + f" (needs > {self.z:g} se): {DECISIONS[self.decision]}"


def decide(correct: dict[str, pd.Series], left_out: dict[str, int], z: float) -> Regime:
    """From each probe student's answers (booleans per probe question, aligned), the value of the
    long and short slices beyond the random one, and the decision."""
    random = correct["random"].astype(float).to_numpy()
    rows, clear = [], {}
    for name in SLICES:
        answers = correct[name].astype(float).to_numpy()
        cost = random - answers  # what leaving this slice out cost, beyond leaving a random one out
        n = len(cost)
        value = float(cost.mean()) if n else 0.0
        se = float(cost.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        if name != "random" and value - z * se > 1e-12:
            clear[name] = value
        rows.append({"slice": name, "left_out": left_out[name], "accuracy": float(answers.mean()) if n else 0.0,
                     "value": value, "se": se if name != "random" else 0.0})
    decision = max(clear, key=clear.get) if clear else "random"
    return Regime(pd.DataFrame(rows), decision, z)


def purchase_priority(lengths: pd.Series, decision: str, seed: int) -> pd.Series:
    """Each candidate's priority under the decision: its length (longest first), minus it
    (shortest first), or a seeded random key."""
    values = lengths.astype(float)
    if decision == "long":
        return values
    if decision == "short":
        return -values
    return pd.Series(np.random.default_rng(seed).random(len(values)), index=values.index)
