"""Stage-2 selection rules, registered by name: `selection.strategy` picks one.

A rule gives every candidate question a priority (higher is bought first, ties broken by id)
from its signals (signals/compute.py: self_consistency, ta_conf_student). Adding a rule is one
class here, its line in the config's choice table (config/choices.py: its name, summary and
whether it needs the student's samples) and its test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from ..config import choices

if TYPE_CHECKING:
    from ..config import SelectionConfig, SignalsConfig


class SelectionRule:
    def priority(self, signals: pd.DataFrame, config: "SignalsConfig", seed: int) -> pd.Series:
        raise NotImplementedError


def rule_named(name: str) -> SelectionRule:
    return choices.load("selection.strategy", name)()


def rank_normalise(values: pd.Series) -> pd.Series:
    """Average ranks scaled to [0, 1]; ties share a rank; a single value maps to 0.5."""
    if len(values) <= 1:
        return pd.Series(0.5, index=values.index)
    return (values.rank(method="average") - 1) / (len(values) - 1)


class RandomPick(SelectionRule):
    """A seeded random pick: the rounds' schedule alone."""

    def priority(self, signals, config, seed):
        return pd.Series(np.random.default_rng(seed).random(len(signals)), index=signals.index)


class UnsureFirst(SelectionRule):
    """The paper's reading: buy where the student is least sure of itself."""

    def priority(self, signals, config, seed):
        total = config.w_sc + config.w_ta
        if total == 0:
            raise ValueError("signals.w_sc and signals.w_ta are both 0: nothing to select by")
        sc = rank_normalise(signals["self_consistency"])
        ta = rank_normalise(signals["ta_conf_student"])
        return (config.w_sc * (1 - sc) + config.w_ta * (1 - ta)) / total


class UnsureButLearnable(SelectionRule):
    """Unsure first, and among equally unsure questions the ones the TA finds closest to right.

    Self-consistency over a few samples takes few values (5 with 4 samples), so most candidates
    tie on it. The TA's confidence in the student's own samples breaks the ties towards questions
    where the student's attempts are nearly right: learnable from one teacher output, where the
    teacher itself is less often wrong than on the hardest questions.
    """

    def priority(self, signals, config, seed):
        unsure = (-signals["self_consistency"].astype(float)).rank(method="dense")
        learnable = signals["ta_conf_student"].astype(float).rank(method="dense")
        # Lexicographic: a dense rank of the tie-break never exceeds len + 1, so it never
        # outweighs one step of unsureness.
        return unsure * (len(signals) + 1) + learnable


class PartlySolvedFirst(SelectionRule):
    """Buy at the edge of what the student can do: questions it partly solves come first.

    A question whose samples all agree is settled for the student (right or confidently wrong);
    one whose samples all differ is beyond it: a single teacher output of a problem the student
    cannot begin teaches it little, and the teacher errs most there too. In between (some samples
    agree, not all) the student is partly there. The band moves with the student: a weak student's
    partly solved questions are easier ones than a strong student's, which is what lets the rule
    follow the run instead of a setting fitted to a world. Within the band, and then among the
    questions beyond the student, and last among the settled ones, the paper's priority orders
    (w_sc x (1 - self-consistency) + w_ta x (1 - TA confidence in the student's samples)), so the
    least sure of the partly solved are bought first. `all differ` is read from the agreement
    signal (the default consistency): at most 1/num_samples.
    """

    def priority(self, signals, config, seed):
        unsure = UnsureFirst().priority(signals, config, seed)
        sc = signals["self_consistency"].astype(float)
        floor = 1.0 / signals["num_samples"].astype(float) if "num_samples" in signals else 0.0
        band = np.where((sc > floor + 1e-9) & (sc < 1 - 1e-9), 2, np.where(sc < 1 - 1e-9, 1, 0))
        # unsure lies in [0, 1]: a band is worth more than any priority within one.
        return pd.Series(band, index=signals.index) * 2 + unsure


class ProximalFirst(SelectionRule):
    """Buy in the student's zone of proximal development, read from the TA's verdict on each sample.

    A sample *looks right* when the TA is at least as confident in it as in the right outputs of
    the run's calibration (the level `trust.calibration_quantile` of them fall below, the same
    line trust draws; steps/signals.py passes it in as `ta_pass_share`, the share of a question's
    samples that look right). A question with some samples that look right and some that do not
    is one the student partly solves: one teacher output there completes what it half knows.
    Those come first (the least solved of them first, then the paper's priority). Then come the
    questions where no sample looks right, nearest first (the highest mean TA confidence in the
    student's samples): the easiest of what is beyond the student, not the hardest. Questions
    where every sample looks right come last.

    Unlike `signals`, which buys the hardest questions, the band and the order within it move
    with the student and nothing else: a weak student's zone holds short problems, a strong
    one's long problems, and no setting is fitted to a world.
    """

    def priority(self, signals, config, seed):
        if "ta_pass_share" not in signals or signals["ta_pass_share"].isna().all():
            raise ValueError("selection.strategy 'proximal' needs the share of each question's samples that look "
                             "right to the TA (ta_pass_share), read against the run's trust calibration")
        share = signals["ta_pass_share"].astype(float)
        partly = (share > 0) & (share < 1)
        beyond = share <= 0
        unsure = UnsureFirst().priority(signals, config, seed)  # in [0, 1]
        nearest = rank_normalise(signals["ta_conf_student"].astype(float))  # in [0, 1]
        # Bands 4 apart, each ordered by a score in [0, 2]: a band outweighs any order within one.
        within = np.where(partly, (1 - share) + unsure, np.where(beyond, nearest, unsure))
        band = np.where(partly, 2, np.where(beyond, 1, 0))
        return pd.Series(band * 4 + within, index=signals.index)


class ShortestFirst(SelectionRule):
    """An easy-first baseline that reads nothing of the run: the shortest questions first (fewest
    characters), a stand-in for the typical, easy picks that win at low budgets (Hacohen et al. 2022)."""

    def priority(self, signals, config, seed):
        if "question_length" not in signals:
            raise ValueError("selection.strategy 'shortest' needs each candidate's question_length")
        return -signals["question_length"].astype(float)


class LearningProgress(SelectionRule):
    """Buy where the student was measured to learn (signals/progress.py): each candidate carries
    the weight its length group earned (`progress_weight`), and the purchase is a weighted random
    sample without replacement (Efraimidis and Spirakis: the top keys of log(u) / weight), so each
    group's share follows its measured progress and a purchase with no clear progress anywhere is
    uniformly random."""

    def priority(self, signals, config, seed):
        if "progress_weight" not in signals:
            raise ValueError("selection.strategy 'progress' needs each candidate's group weight (progress_weight), "
                             "measured on the run's labelled probe")
        return _weighted_keys(signals["progress_weight"].astype(float), np.random.default_rng(seed))


class RegimeTest(SelectionRule):
    """Buy hard, easy or random as the run's own regime test decided (signals/regime.py): each
    candidate carries the priority the decision gives it (`regime_priority`: its length, minus it,
    or a random key)."""

    def priority(self, signals, config, seed):
        if "regime_priority" not in signals:
            raise ValueError("selection.strategy 'regime' needs each candidate's regime_priority, decided by probe "
                             "students trained on what was bought")
        return signals["regime_priority"].astype(float)


class CommitteeDisagreement(SelectionRule):
    """Buy where students trained on resamples of the purchase so far disagree (signals/committee.py):
    each candidate carries the priority its measured disagreement gives it (`committee_priority`:
    the most disputed first, ties in a seeded random order)."""

    def priority(self, signals, config, seed):
        if "committee_priority" not in signals:
            raise ValueError("selection.strategy 'committee' needs each candidate's committee_priority, measured by "
                             "students trained on resamples of what was bought")
        return signals["committee_priority"].astype(float)


def _weighted_keys(weights: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Keys whose top k is a weighted random sample of k without replacement; weight 0 comes last."""
    u = rng.random(len(weights))
    w = weights.to_numpy(dtype=float)
    keys = np.where(w > 0, np.log(u) / np.where(w > 0, w, 1.0), -1e12 - u)
    return pd.Series(keys, index=weights.index)


def select(signals: pd.DataFrame, count: int, strategy: str, config: "SignalsConfig", seed: int,
           selection: Optional["SelectionConfig"] = None) -> pd.DataFrame:
    """Mark `count` candidates `selected` under the named rule: the highest priorities (ties by
    id), or with `selection.sampling: rank` a random sample in proportion to the priority's rank;
    `selection.random_floor` of them first, uniformly at random (what no rule can starve)."""
    out = signals.copy()
    out["score"] = rule_named(strategy).priority(out, config, seed)
    count = max(0, min(count, len(out)))
    floor = selection.random_floor if selection is not None else 0.0
    rng = np.random.default_rng((seed, 7919))  # draws of their own: a rule's own randomness is untouched
    at_random = out.index[rng.permutation(len(out))[: int(round(floor * count))]]
    rest = out.drop(index=at_random)
    key = rest["score"]
    if selection is not None and selection.sampling == "rank":
        key = _weighted_keys(rest["score"].rank(method="average"), rng)
    ordered = rest.assign(_key=key).sort_values(["_key", "id"], ascending=[False, True]).index
    out["selected"] = False
    out.loc[list(at_random) + list(ordered[: count - len(at_random)]), "selected"] = True
    out["at_random"] = out.index.isin(at_random)
    return out
