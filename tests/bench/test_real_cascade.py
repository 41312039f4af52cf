"""bench.real.cascade's money-to-target (issue 28, item 4c) on a pair of teachers built here."""

import numpy as np
import pandas as pd
import pytest


def _pair(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A cheap teacher right on half the questions, a dear one on 90%, each request costing 1 and 10."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"key": [f"q{i}" for i in range(n)], "right_cheap": rng.random(n) < 0.5,
                         "right_dear": rng.random(n) < 0.9, "cost_cheap": 1.0, "cost_dear": 10.0})


def test_a_signal_that_sees_the_cheap_teachers_mistakes_reaches_the_target_for_less_than_the_dear_teacher():
    from bench.real.cascade import in_calibration, money_to_target

    frame = _pair()
    noise = np.random.default_rng(1).normal(0, 0.3, len(frame))
    rows = money_to_target(frame, frame["right_cheap"].to_numpy(float) + noise, "good")
    by = {(r["target"], r["policy"]): r for r in rows}
    evaluated = int((~frame["key"].map(in_calibration)).sum())
    assert {r["questions"] for r in rows} == {evaluated}
    halfway = by[("halfway", "cascade")]
    assert halfway["reached"] and halfway["money"] < by[("halfway", "expensive")]["money"]
    # Random escalation needs far more money for the same share: the signal is what saves it.
    assert by[("halfway", "random_escalation")]["money"] > halfway["money"]
    assert not by[("halfway", "cheap")]["reached"]
    assert by[("halfway", "cheap")]["money"] == pytest.approx(evaluated)
    assert by[("halfway", "expensive")]["money"] == pytest.approx(10 * evaluated)


def test_random_escalation_buys_the_share_linearly_and_a_useless_signal_saves_nothing():
    from bench.real.cascade import money_to_target

    frame = _pair()
    rows = money_to_target(frame, np.random.default_rng(2).random(len(frame)), "noise")
    by = {(r["target"], r["policy"]): r for r in rows}
    rand = by[("halfway", "random_escalation")]
    ev_cheap, ev_dear = by[("halfway", "cheap")]["right_share"], by[("halfway", "expensive")]["right_share"]
    share = ev_cheap + rand["escalated"] / rand["questions"] * (ev_dear - ev_cheap)
    assert rand["right_share"] == pytest.approx(share, abs=1e-4) and rand["right_share"] >= rand["target_share"]
    cascade = by[("halfway", "cascade")]
    # A signal blind to mistakes escalates about as many questions as random escalation does.
    assert cascade["escalated"] == pytest.approx(rand["escalated"], rel=0.25)
