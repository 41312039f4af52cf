"""The regime test's slices, its paired decision and the priority it gives the next purchase."""

import numpy as np
import pandas as pd
import pytest

from tadistill.signals.regime import decide, purchase_priority, slices
from tadistill.signals.selection import rule_named


def test_slices_leave_out_the_longest_the_shortest_and_a_seeded_random_set_of_one_size():
    lengths = pd.Series([50, 10, 40, 20, 30, 60, 70, 80, 90], index=[f"q{i}" for i in range(9)])
    cut = slices(lengths, 1 / 3, seed=3)
    assert sorted(lengths[cut["long"]]) == [70, 80, 90]
    assert sorted(lengths[cut["short"]]) == [10, 20, 30]
    assert len(cut["random"]) == 3 and len(set(cut["random"])) == 3
    assert list(slices(lengths, 1 / 3, seed=3)["random"]) == list(cut["random"])


def test_slices_of_a_tiny_purchase_leave_out_at_least_one():
    cut = slices(pd.Series([5, 3]), 0.2, seed=0)
    assert all(len(v) == 1 for v in cut.values())


def _answers(right: int, n: int = 100) -> pd.Series:
    return pd.Series([True] * right + [False] * (n - right))


def test_a_slice_whose_absence_clearly_costs_more_than_a_random_one_decides_the_purchase():
    # Without the long slice the probe student loses 30 questions the other two answer.
    correct = {"long": _answers(40), "short": _answers(70), "random": _answers(70)}
    regime = decide(correct, {"long": 10, "short": 10, "random": 10}, z=2.0)
    assert regime.decision == "long"
    table = regime.table.set_index("slice")
    assert table.loc["long", "value"] == pytest.approx(0.30) and table.loc["short", "value"] == 0.0
    line = regime.said()
    assert "value of the long slice +0.300" in line and line.endswith("bought the longest first")


def test_without_clear_evidence_the_purchase_stays_random():
    # Two questions of a hundred differ: well within two standard errors.
    correct = {"long": _answers(68), "short": _answers(70), "random": _answers(70)}
    assert decide(correct, {"long": 10, "short": 10, "random": 10}, z=2.0).decision == "random"
    # At z = 0 any positive value is evidence enough.
    assert decide(correct, {"long": 10, "short": 10, "random": 10}, z=0.0).decision == "long"


def test_when_both_slices_clear_the_larger_value_wins():
    correct = {"long": _answers(50), "short": _answers(30), "random": _answers(80)}
    assert decide(correct, {"long": 5, "short": 5, "random": 5}, z=1.0).decision == "short"


def test_a_slice_that_helps_by_its_absence_is_no_evidence_for_buying_it():
    correct = {"long": _answers(90), "short": _answers(70), "random": _answers(70)}
    assert decide(correct, {"long": 5, "short": 5, "random": 5}, z=1.0).decision == "random"


def test_the_decision_orders_the_next_purchase():
    lengths = pd.Series([30.0, 10.0, 20.0], index=[7, 8, 9])
    assert list(purchase_priority(lengths, "long", 0).sort_values(ascending=False).index) == [7, 9, 8]
    assert list(purchase_priority(lengths, "short", 0).sort_values(ascending=False).index) == [8, 9, 7]
    keys = purchase_priority(lengths, "random", 0)
    assert keys.between(0, 1).all() and keys.equals(purchase_priority(lengths, "random", 0))


def test_the_rule_reads_the_priority_its_test_decided_and_refuses_without_one():
    rule = rule_named("regime")
    signals = pd.DataFrame({"id": ["a", "b"], "regime_priority": [0.2, 0.9]})
    assert list(rule.priority(signals, None, 0)) == [0.2, 0.9]
    with pytest.raises(ValueError, match="regime_priority"):
        rule.priority(signals.drop(columns=["regime_priority"]), None, 0)
    assert np.isfinite(rule.priority(signals, None, 0)).all()
