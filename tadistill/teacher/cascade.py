"""Whom each question is bought from, when a run has several teachers (`teachers:`, cheapest
first), chosen once from `cascade.policy`:

- `fixed`: every question from one teacher (`cascade.teacher`, the first by default): the
  baseline, and what a single-teacher run does;
- `cascade`: every question from the first teacher; where trust in what it answered (the run's
  trust signal on its calibrated scale, fixed before any purchase) is below
  `cascade.escalate_below`, the same question from the next teacher, and so on; the question
  keeps the outputs of the teacher trusted most (the later one on a tie). Questions go in
  batches of `cascade.batch`, their escalations bought before the next batch, so a budget that
  runs out stops between whole questions.

A policy buys through the teachers' own `buy` (their caches, one ledger), so a rerun pays no
stored response twice: the cheap answers come back from the cache, are judged the same, and
the same escalations come back from theirs. `judge(outputs) -> trust weight per output` is
handed in by the plan (the trust step's signal and scale), so this stage imports nothing above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Optional

import pandas as pd

from .budget import PurchaseReport

Judge = Callable[[pd.DataFrame], pd.Series]


@dataclass
class Purchase:
    outputs: pd.DataFrame  # what the purchase keeps (one teacher's outputs per question), column `model` says whose
    report: PurchaseReport  # over every teacher: requests bought, tokens, cost
    offers: Optional[pd.DataFrame] = None  # everything bought, with `trust_weight` and `kept` (a cascade)
    by_teacher: list[dict] = field(default_factory=list)


def merged(reports: list[PurchaseReport]) -> PurchaseReport:
    """The sum of several teachers' reports (failures joined)."""
    total = PurchaseReport()
    for report in reports:
        for f in fields(PurchaseReport):
            value = getattr(report, f.name)
            setattr(total, f.name, getattr(total, f.name) + value)
    return total


class Policy:
    def __init__(self, config):
        self.config = config  # the cascade section

    def buy(self, teachers: list, picks: pd.DataFrame, system_prompt: str, budget, desc: str,
            judge: Optional[Judge]) -> Purchase:
        raise NotImplementedError


class Fixed(Policy):
    def buy(self, teachers, picks, system_prompt, budget, desc, judge):
        teacher = next((t for t in teachers if t.model == self.config.teacher), teachers[0])
        outputs, report = teacher.buy(picks, system_prompt, budget, desc=desc)
        by_teacher = [{"teacher": teacher.model, "questions": report.bought, "escalated": 0,
                       "cost": round(report.cost, 6)}] if len(teachers) > 1 else []
        return Purchase(outputs, report, by_teacher=by_teacher)


class Cascade(Policy):
    def buy(self, teachers, picks, system_prompt, budget, desc, judge):
        if judge is None:
            raise ValueError("cascade.policy 'cascade' buys on trust: the plan hands it no judge")
        offers, reports = [], {t.model: [] for t in teachers}
        escalated = {t.model: 0 for t in teachers}
        for start in range(0, len(picks), self.config.batch):
            pending = picks.iloc[start:start + self.config.batch]
            out_of_budget = False
            for level, teacher in enumerate(teachers):
                outputs, report = teacher.buy(pending, system_prompt, budget, desc=f"{desc} {teacher.model}")
                reports[teacher.model].append(report)
                out_of_budget = out_of_budget or report.not_bought_budget > 0
                if outputs.empty:
                    break
                outputs = outputs.assign(trust_weight=judge(outputs).to_numpy(dtype=float), level=level)
                offers.append(outputs)
                if level == len(teachers) - 1:
                    break
                best = outputs.groupby("id")["trust_weight"].max()
                distrusted = set(best[best < self.config.escalate_below].index)
                pending = pending[pending["id"].isin(distrusted)]
                escalated[teacher.model] += len(pending)
                if pending.empty:
                    break
            if out_of_budget:
                break
        every = pd.concat(offers, ignore_index=True) if offers else pd.DataFrame(columns=["id", "trust_weight", "level"])
        every["kept"] = kept_offers(every)
        by_teacher = [{"teacher": t.model, "questions": int(every.loc[every["level"] == i, "id"].nunique()),
                       "escalated": escalated[t.model], "kept": int(every.loc[every["kept"] & (every["level"] == i),
                                                                              "id"].nunique()),
                       "cost": round(sum(r.cost for r in reports[t.model]), 6)}
                      for i, t in enumerate(teachers)]
        total = merged([r for rs in reports.values() for r in rs])
        total.not_bought_budget = len(picks) - int(every["id"].nunique())
        kept = every[every["kept"]].drop(columns=["trust_weight", "level", "kept"]).reset_index(drop=True)
        return Purchase(kept, total, every, by_teacher)


def kept_offers(offers: pd.DataFrame) -> pd.Series:
    """Per offer, whether it is kept: its question's outputs from the teacher trusted most (the
    best of its outputs' trust weights; a tie goes to the later, dearer teacher)."""
    if offers.empty:
        return pd.Series(dtype=bool)
    best = offers.groupby(["id", "level"])["trust_weight"].max().reset_index()
    best = best.sort_values(["id", "trust_weight", "level"]).groupby("id").tail(1)
    chosen = dict(zip(best["id"], best["level"]))
    return offers["level"] == offers["id"].map(chosen)
