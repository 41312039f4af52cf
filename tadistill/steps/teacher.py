"""The teacher's steps of a run: recorded outputs matched to the corpus, the random warm-up pick,
and each purchase (the warm-up's and every round's), all through the run's one budget.

Also what every later step asks about purchases: the questions that may be bought, and what has
been bought before a round.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Optional

import pandas as pd

from ..artifacts import (LABELLED_PURCHASE, ROWS, WARMUP, teacher_records, Artifact, bought, offers, picks,
                         purchase_step, round_name)
from ..console import LOG_ONLY

if TYPE_CHECKING:
    from ..context import RunContext

log = logging.getLogger(__name__)


def step_teacher_records(ctx: "RunContext", index: int = 0) -> dict:
    """Import the recorded outputs of the run's teacher `index` (the first, or one of `teachers`)
    and match them to corpus rows (no budget spent here)."""
    from ..teacher.recorded import import_records

    teacher = ctx.config.teacher_list()[index]
    records_table, unmatched_table = teacher_records(teacher.model, index == 0)
    rows = ctx.run_dir.read_table(ROWS)
    records, unmatched = import_records(teacher.recorded, ctx.config.data.root, rows, ctx.config.data.max_row_bytes)
    ctx.run_dir.write_table(records_table, records)
    ctx.run_dir.write_table(unmatched_table, unmatched)
    pool = rows[rows["split"] == ctx.config.data.pool_split]
    without = int((~pool["id"].isin(set(records["id"]))).sum())
    whose = "recorded teacher" if len(ctx.config.teacher_list()) == 1 else f"recorded teacher {teacher.model}"
    if len(unmatched):
        log.warning("%s: %d output(s) match no corpus row; see %s", whose, len(unmatched),
                    ctx.run_dir.location(unmatched_table))
    if without:
        log.warning("%s: %d of %d pool questions have no recorded output and cannot be bought",
                    whose, without, len(pool))
    return {"rows": len(records), "questions": int(records["id"].nunique()), "unmatched": len(unmatched),
            "pool_without_record": without}


def pool_rows(ctx: "RunContext") -> pd.DataFrame:
    """Questions the method may buy: the pool split, less those a recorded teacher cannot answer
    (with several teachers, those every one of them can answer: each policy buys from the same pool)."""
    rows = ctx.run_dir.read_table(ROWS)
    pool = rows[rows["split"] == ctx.config.data.pool_split]
    for teacher in ctx.teachers:
        pool = teacher.buyable(pool)
    return pool.sort_values("id").reset_index(drop=True)


def earlier_purchases(config, k: int) -> list[Artifact]:
    """What tells which questions were bought before round k: the warm-up's outputs (its empty
    pick when it buys nothing) and every earlier round's."""
    first = bought(WARMUP) if config.warmup_requests() else picks(WARMUP)
    return [first] + [bought(round_name(j)) for j in range(1, k)]


def bought_ids(ctx: "RunContext", tables: list[Artifact]) -> set:
    return set().union(*(set(ctx.run_dir.read_table(t)["id"]) for t in tables))


def step_pick_warmup(ctx: "RunContext") -> dict:
    """A seeded random pick of the warm-up's size (a one-stage method's whole purchase)."""
    pool = pool_rows(ctx)
    count = min(ctx.config.warmup_requests(), len(pool))
    picked = pool.sample(n=count, random_state=ctx.config.seed)[["id", "question"]]
    ctx.run_dir.write_table(picks(WARMUP), picked)
    return {"rows": len(picked)}


def step_pick_labelled(ctx: "RunContext") -> dict:
    """A seeded random pick of trust.calibration_questions questions of trust.calibration_split
    (those a recorded teacher can answer and with a gold answer): what a learning trust signal
    learns right from wrong on."""
    from ..artifacts import LABELLED_PURCHASE
    from ..corpus import CorpusError

    config = ctx.config
    rows = ctx.run_dir.read_table(ROWS)
    split = rows[(rows["split"] == config.trust.calibration_split) & rows["gold"].notna()]
    split = ctx.teacher.buyable(split).sort_values("id")
    if split.empty:
        splits = ", ".join(sorted(rows["split"].unique()))
        raise CorpusError(f"trust.calibration_split {config.trust.calibration_split!r}: no question with a gold answer "
                          f"the teacher can answer; the corpus has splits {splits}")
    count = min(config.calibration_requests(), len(split))
    if count < config.calibration_requests():
        log.warning("trust.calibration_split %r has %d usable questions, fewer than trust.calibration_questions %d; "
                    "the rest of that share of the budget is not spent", config.trust.calibration_split, count,
                    config.calibration_requests())
    picked = split.sample(n=count, random_state=config.seed)[["id", "question"]]
    ctx.run_dir.write_table(picks(LABELLED_PURCHASE), picked)
    return {"rows": len(picked), "split": config.trust.calibration_split}


def step_buy(ctx: "RunContext", purchase: str, judge: Optional[Callable] = None) -> dict:
    """Buy the purchase's picks, most preferred first, until the budget ends, from the teacher(s)
    cascade.policy names (`judge(ctx, outputs)`: trust weights, for a policy that escalates on
    them); every response is stored before it is used, so a rerun pays for none of them again."""
    from ..config import choices
    from ..tasks.answers import add_answers
    from ..tasks.prompts import system_prompt
    from ..teacher.batch import batch_info

    chosen = ctx.run_dir.read_table(picks(purchase))
    rows = ctx.run_dir.read_table(ROWS)
    # One task, one answer type: every corpus row carries it.
    prompt = system_prompt(ctx.config.teacher.system_prompt, rows["answer_type"].iloc[0])
    step = purchase_step(purchase)
    cascade = ctx.config.cascade
    if purchase == LABELLED_PURCHASE:  # what the trust signal learns from: the answering teacher's outputs
        cascade = cascade.model_copy(update={"policy": "fixed", "teacher": ctx.teacher.model})
    policy = choices.load("cascade.policy", cascade.policy)(cascade)
    judged = (lambda outputs: judge(ctx, outputs)) if judge is not None else None
    bought_now = policy.buy(ctx.teachers, chosen, prompt, ctx.budget(), step, judged)
    outputs, report = add_answers(bought_now.outputs, rows, ctx.config.data.answer_fallback), bought_now.report
    ctx.run_dir.write_table(bought(purchase), outputs)
    if bought_now.offers is not None:
        ctx.run_dir.write_table(offers(purchase), add_answers(bought_now.offers, rows, ctx.config.data.answer_fallback))
    ctx.teacher_sent += report.sent
    log.info("%s: bought %d (sent %d, cache hits %d, truncated %d)", step, report.bought, report.sent,
             report.cache_hits, report.truncated, extra=LOG_ONLY)
    return {
        "rows": report.bought, "outputs": len(outputs), "sent": report.sent, "cache_hits": report.cache_hits,
        "not_bought_budget": report.not_bought_budget, "unextractable_answers": int(outputs["answer"].isna().sum()),
        "truncated": report.truncated, "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens, "cost": round(report.cost, 6),
        **({"by_teacher": bought_now.by_teacher} if bought_now.by_teacher else {}),
        **batch_info(report),  # teacher.batch: each batch, its status history, its cost and the synchronous one
    }
