"""Committee disagreement: resamples, the mutual information between answer and member, and the
priority it gives the next purchase."""

import math

import numpy as np
import pandas as pd
import pytest

from tadistill.signals.committee import Committee, bootstrap_resamples, disagreement, purchase_priority
from tadistill.signals.selection import rule_named


def _answers(by_member: dict[str, list[list]]) -> pd.DataFrame:
    """{question id: [member 0's sampled answers, member 1's, ...]} as (id, member, answer) rows."""
    return pd.DataFrame([{"id": qid, "member": m, "answer": a}
                         for qid, members in by_member.items() for m, sampled in enumerate(members) for a in sampled])


def test_each_member_resamples_with_replacement_and_a_seed_repeats_them():
    drawn = bootstrap_resamples(50, 3, seed=4)
    assert len(drawn) == 3 and all(len(d) == 50 and d.min() >= 0 and d.max() < 50 for d in drawn)
    assert all(len(set(d)) < 50 for d in drawn)  # with replacement: some outputs twice, some not at all
    assert not np.array_equal(drawn[0], drawn[1])
    assert all(np.array_equal(a, b) for a, b in zip(drawn, bootstrap_resamples(50, 3, seed=4)))


def test_members_sure_of_different_answers_disagree_and_members_unsure_alike_do_not():
    table = disagreement(_answers({
        "settled": [["4", "4"], ["4", "4"], ["4", "4"]],
        "disputed": [["4", "4"], ["5", "5"], ["6", "6"]],  # each member sure, each of another answer
        "beyond": [["1", "2"], ["1", "2"], ["1", "2"]],  # every member torn the same way
    })).set_index("id")
    assert table.loc["settled", "disagreement"] == 0
    assert table.loc["disputed", "disagreement"] == pytest.approx(math.log(3))
    # As unsure as can be (self-consistency 1/2 in every member), yet nothing to learn from a
    # committee's view: what one student's inconsistency would call worth buying, this does not.
    assert table.loc["beyond", "pooled_entropy"] == pytest.approx(math.log(2))
    assert table.loc["beyond", "disagreement"] == pytest.approx(0, abs=1e-12)


def test_an_unreadable_answer_is_an_outcome_of_its_own():
    table = disagreement(_answers({"q": [[None, None], ["7", "7"]]})).set_index("id")
    assert table.loc["q", "disagreement"] == pytest.approx(math.log(2))


def test_the_most_disputed_come_first_and_ties_fall_in_a_seeded_random_order():
    measured = pd.Series([0.0] * 40 + [0.7, 0.2], index=range(42))
    priority = purchase_priority(measured, seed=1)
    ranked = list(priority.sort_values(ascending=False).index)
    assert ranked[:2] == [40, 41]
    assert ranked[2:] != sorted(ranked[2:]) and priority.equals(purchase_priority(measured, seed=1))
    assert not priority.equals(purchase_priority(measured, seed=2))


def test_the_report_line_says_how_many_disagree_and_what_was_bought():
    table = disagreement(_answers({"a": [["1"], ["2"]], "b": [["3"], ["3"]]}))
    line = Committee(table, members=2, outputs=12).said()
    assert line.startswith("2 students on bootstrap resamples of 12 bought outputs disagree on 50% of 2 candidates")
    assert line.endswith("bought the most disputed first")


def test_the_rule_reads_the_committees_priority_and_refuses_without_one():
    rule = rule_named("committee")
    signals = pd.DataFrame({"id": ["a", "b"], "committee_priority": [3.0, 9.0]})
    assert list(rule.priority(signals, None, 0)) == [3.0, 9.0]
    with pytest.raises(ValueError, match="committee_priority"):
        rule.priority(signals.drop(columns=["committee_priority"]), None, 0)
