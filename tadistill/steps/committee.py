"""A committee's round (signals/committee.py), inside the round's select step: students trained
on bootstrap resamples of what was bought before the round each sample every candidate, and the
round buys where they disagree. The members are scratch: trained, asked, deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..artifacts import Artifact
    from ..context import RunContext


def with_committee(ctx: "RunContext", signals: pd.DataFrame, pool: pd.DataFrame, bought_so_far: Optional["Artifact"],
                   seed: int) -> tuple[pd.DataFrame, dict]:
    """The candidates with their measured disagreement and the priority it gives them; and what
    was measured, for the manifest and the report."""
    from ..signals.committee import FEWEST_BOUGHT, Committee, disagreement, purchase_priority

    outputs = ctx.run_dir.read_table(bought_so_far) if bought_so_far is not None else pd.DataFrame()
    if len(outputs) < FEWEST_BOUGHT:  # nothing measured: every candidate ties, bought in a seeded random order
        keys = purchase_priority(pd.Series(0.0, index=signals.index), seed)
        return signals.assign(committee_disagreement=np.nan, committee_priority=keys.to_numpy()), {
            "committee": f"{len(outputs)} outputs bought before this round, too few to resample: bought at random"}
    answers = _members_answers(ctx, outputs, pool, seed)
    committee = Committee(disagreement(answers), ctx.config.selection.committee_size, len(outputs))
    measured = signals["id"].map(committee.table.set_index("id")["disagreement"]).fillna(0.0)
    return signals.assign(committee_disagreement=measured.to_numpy(),
                          committee_priority=purchase_priority(measured, seed).to_numpy()), {
        "committee": committee.said(), "committee_members": committee.members, "committee_samples": len(answers)}


def _members_answers(ctx: "RunContext", outputs: pd.DataFrame, pool: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each member's sampled answers to every candidate (id, member, answer): member m trained
    from the base student on the m-th bootstrap resample, with the round students' settings."""
    from ..signals.committee import bootstrap_resamples
    from .scratch import bought_rows, fine_tune_in_process, round_student_settings, scratch_folder

    config, base = ctx.config, ctx.models()["student"]
    rows = bought_rows(ctx, outputs)
    answers = []
    with scratch_folder(ctx, "committee-") as scratch:
        for member, drawn in enumerate(bootstrap_resamples(len(rows), config.selection.committee_size, seed)):
            folder = scratch / f"member{member}"
            fine_tune_in_process(ctx, base, rows.iloc[drawn].reset_index(drop=True), folder,
                                 **round_student_settings(config, seed + member))
            sampled = ctx.executor.sample(str(folder), pool, None)
            answers.append(sampled[["id", "answer"]].assign(member=member))
    return pd.concat(answers, ignore_index=True)
