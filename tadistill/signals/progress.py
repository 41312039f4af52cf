"""Learning progress per group (after Graves et al. 2017 and ALP-GMM): where did the student learn
from what it was taught, measured, and where should the next purchase go?

Questions are grouped by what is known before buying: their length, in `selection.groups`
quantile bins of the pool. After each round's training the student answers the run's labelled
probe (the outputs known to be right: the trust calibration's references), and so did the student
before it (the base student, or the previous round's). A group's progress is its probe accuracy
gained, with a standard error from the paired answers. The purchase goes to the groups in
proportion to the progress they showed beyond `selection.evidence_z` standard errors: where the
student learned, it can learn more; a group it already knows, or cannot learn yet, shows none.
Without clear progress anywhere the purchase is random. A share (`selection.random_floor`) is
always bought at random (ALP-GMM keeps 20% random tasks), so no group is starved on one noisy
measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def length_edges(lengths: pd.Series, groups: int) -> np.ndarray:
    """Inner edges of `groups` quantile bins of question lengths (fewer when lengths repeat)."""
    values = lengths.to_numpy(dtype=float)
    inner = np.unique(np.quantile(values, np.linspace(0, 1, groups + 1)[1:-1]))
    return inner[inner > values.min()]  # an edge at the shortest length would leave its group empty


def group_of(lengths: pd.Series, edges: np.ndarray) -> pd.Series:
    """The group (0 = shortest) of each length."""
    return pd.Series(np.searchsorted(edges, lengths.to_numpy(dtype=float), side="right"), index=lengths.index)


@dataclass
class Progress:
    table: pd.DataFrame  # per group: questions, accuracy before and after, progress, its se, share of the purchase
    random: bool  # no group showed clear progress: the purchase is random

    def said(self) -> str:
        """One line for the report: what was measured and what was decided."""
        parts = [f"group {int(r.group)} ({int(r.probe)} probe questions) {r.progress:+.3f} ± {r.se:.3f}"
                 for r in self.table.itertuples()]
        if self.random:
            decision = "no clear progress anywhere: bought at random"
        else:
            shares = ", ".join(f"{r.share:.0%}" for r in self.table.itertuples())
            decision = f"bought by progress (shares {shares})"
        return "; ".join(parts) + f": {decision}"


def measure_progress(groups: pd.Series, before: pd.Series, after: pd.Series, z: float) -> Progress:
    """Per group: probe accuracy before and after (booleans per probe question, aligned), the gain,
    its standard error over the paired answers, and the purchase's share: in proportion to the gain
    beyond z standard errors, none where it does not clear that."""
    diff = after.astype(float) - before.astype(float)
    rows = []
    for group in sorted(groups.unique()):
        mask = (groups == group).to_numpy()
        n = int(mask.sum())
        gains = diff[mask]
        se = float(gains.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        progress = float(gains.mean())
        rows.append({"group": int(group), "probe": n, "before": float(before[mask].mean()),
                     "after": float(after[mask].mean()), "progress": progress, "se": se,
                     "clear": max(0.0, progress - z * se)})
    table = pd.DataFrame(rows)
    table.loc[table["clear"] < 1e-9, "clear"] = 0.0  # progress of exactly z standard errors is not beyond them
    total = table["clear"].sum()
    table["share"] = table["clear"] / total if total > 0 else 0.0
    return Progress(table.drop(columns=["clear"]), random=not total > 0)


def item_weights(groups: pd.Series, progress: Progress) -> pd.Series:
    """Each candidate's weight for weighted sampling, so that each group's expected share of the
    purchase is its share (spread over its candidates); equal weights when the purchase is random.
    A group with no candidate left passes its share to the others."""
    if progress.random:
        return pd.Series(1.0, index=groups.index)
    share = groups.map(progress.table.set_index("group")["share"]).fillna(0.0)
    size = groups.map(groups.value_counts())
    weights = share / size
    return weights if weights.sum() > 0 else pd.Series(1.0, index=groups.index)
