"""Method presets: what each `method=` name sets in the config, registered in one place.

A method is a point in a small factorial, plus the reference rows a fair comparison needs:

- `base`: the student before any distillation (no teacher request, no training);
- `none`: plain fine-tuning on a random purchase of the whole budget (the paper's
  "fine-tuning without any signals");
- `oracle`: the `none` purchase with the teacher's wrong answers dropped by gold (what perfect
  trust filtering would reach; needs pool gold);
- `ta_teacher_only`: the `none` purchase weighted by the TA's trust in each output;
- `<selection>_<trust>`: a random warm-up, then rounds that buy the rest of the budget picked
  by `selection`, every output's loss shaped by `trust`. Selection is `random` (the schedule
  alone) or one of SELECTIONS below (SELECTION_SUMMARIES says what each buys: the student's
  self-consistency, the TA's confidence, the frontier, the zone of proximal development, learning
  progress per group, the shortest first, the regime test, committee disagreement); trust is
  `none`, `weight`, `filter` or `answer_weight` (signals/trust.py);
- `full` is `both_weight`, the paper's method; `random` is `random_none`, the control that
  changes only the schedule; `full_one_stage` takes the full method's signals from the base
  student, with no warm-up; `auto` is the regime test as issue 38's development draw chose it.

Under `train.schedule: fair` (the default) every method's final student trains from the base
student on everything bought for the same number of optimizer steps, so methods differ only
in which questions were bought and how their outputs are weighted.

Adding a method is one `register(...)` line here and its test; the config, the CLI and the
quality benchmark read the list from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str
    stages: int  # 0: the base student as it is; 1: one random purchase; 2: warm-up, then selection
    summary: str
    preset: dict[str, Any] = field(default_factory=dict)
    gold_weights: bool = False  # oracle: wrong teacher answers weighted 0 by gold


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


# Selection presets of the rounds, as config they set (signals/selection.py holds the rules).
SELECTIONS: dict[str, dict[str, Any]] = {
    "random": {"selection.strategy": "random"},
    "sc": {"selection.strategy": "unsure_first", "signals.w_sc": 1.0, "signals.w_ta": 0.0},
    "ta": {"selection.strategy": "unsure_first", "signals.w_sc": 0.0, "signals.w_ta": 1.0},
    "both": {"selection.strategy": "unsure_first", "signals.w_sc": 1.0, "signals.w_ta": 1.0},
    "learnable": {"selection.strategy": "learnable"},
    "frontier": {"selection.strategy": "frontier", "signals.w_sc": 1.0, "signals.w_ta": 1.0},
    "proximal": {"selection.strategy": "proximal", "signals.w_sc": 1.0, "signals.w_ta": 1.0},
    "progress": {"selection.strategy": "progress"},
    "shortest": {"selection.strategy": "shortest"},
    "regime": {"selection.strategy": "regime"},
    "committee": {"selection.strategy": "committee"},
}
SELECTION_SUMMARIES = {
    "random": "a random pick each round (the schedule alone)",
    "sc": "each round's pick by student self-consistency",
    "ta": "each round's pick by TA confidence in the student's samples",
    "both": "each round's pick by self-consistency and TA confidence in the student",
    "learnable": "each round's pick of the least self-consistent questions, ties to those the TA finds closest to right",
    "frontier": "each round's pick of the questions the student partly solves (some samples agree, not all), least sure first",
    "proximal": "each round's pick in the student's zone of proximal development: partly solved by the TA's reading of "
                "its samples first, then the nearest of what is beyond it",
    "progress": "each round's pick spread over question-length groups by the probe accuracy the round's student "
                "gained in each (measured against the student before it), random where no group gained clearly",
    "shortest": "each round's pick of the shortest questions (an easy-first baseline)",
    "regime": "each round's pick the longest, the shortest or random questions, as probe students trained on what "
              "was bought without each slice say the student learns most from (random unless the evidence is clear)",
    "committee": "each round's pick where students trained on resamples of what was bought disagree most (mutual "
                 "information between answer and member), not where all of them are equally unsure",
}
TRUSTS = ("none", "weight", "filter", "answer_weight")
TRUST_SUMMARIES = {
    "none": "every bought output counts fully",
    "weight": "each output's loss weighted by the TA's trust",
    "filter": "outputs the TA distrusts dropped",
    "answer_weight": "each output's answer weighted by the TA's trust, its rationale in full",
}

register(Method("base", 0, "the student before distillation: no purchase, no training", {"trust.mode": "none"}))
register(Method("none", 1, "plain fine-tuning on a random purchase of the whole budget", {"trust.mode": "none"}))
register(Method("oracle", 1, "the 'none' purchase with wrong teacher answers dropped by gold (needs pool gold)",
                {"trust.mode": "none"}, gold_weights=True))
register(Method("ta_teacher_only", 1, "the 'none' purchase, each output weighted by the TA's trust",
                {"trust.mode": "weight"}))
for _selection, _settings in SELECTIONS.items():
    for _trust in TRUSTS:
        register(Method(f"{_selection}_{_trust}", 2,
                        f"{SELECTION_SUMMARIES[_selection]}; {TRUST_SUMMARIES[_trust]}",
                        {**_settings, "trust.mode": _trust}))
register(Method("full", 2, "the paper's method, = both_weight", METHODS["both_weight"].preset))
register(Method("random", 2, "the schedule-only control, = random_none", METHODS["random_none"].preset))
# Issue 38: the rule chosen on the development draw of worlds, by the rule written before any of
# its runs (bench/quality/README.md, bench/quality/choose_auto.py): the regime test after a
# random warm-up, one round, a fifth of the round bought at random, the rest sampled in
# proportion to rank among the longest or shortest questions only where the evidence is clear.
AUTO = {"selection.strategy": "regime", "selection.random_floor": 0.2, "selection.evidence_z": 2.0,
        "selection.sampling": "rank", "trust.mode": "none"}
register(Method("auto", 2, "the round bought as the run's own regime test says (hard, easy or random; random unless "
                           "the evidence is clear), chosen on a development draw of worlds", AUTO))
register(Method("full_one_stage", 2, "full's signals from the base student, no warm-up",
                {**METHODS["both_weight"].preset, "budget.warmup_share": 0.0}))

# The factorial the quality benchmark runs at its headline cell: selection x trust, as
# pre-registered (the later `learnable_*` methods and `answer_weight` trust are run on their own,
# bench/quality/README.md).
FACTORIAL = tuple(f"{s}_{t}" for s in ("random", "sc", "ta", "both") for t in ("none", "weight", "filter"))


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; one of {', '.join(METHODS)}") from None


def describe() -> str:
    """One line per method, for the config's documentation."""
    return "; ".join(f"'{m.name}' = {m.summary}" for m in METHODS.values())
