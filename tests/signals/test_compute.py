import numpy as np
import pandas as pd
import pytest

from tadistill.config import SignalsConfig, TrustConfig
from tadistill.signals.compute import (
    agreement, answer_entropy_consistency, question_signals, rank_normalise, select, selection_score, trust_weights,
)


def test_agreement():
    assert agreement(["3", "3", "3", "4"]) == 0.75
    assert agreement(["3", None, None, None]) == 0.25
    assert agreement([None, None]) == 0.0
    assert agreement([]) == 0.0


def test_entropy_consistency():
    assert answer_entropy_consistency(["1", "1", "1", "1"]) == pytest.approx(1.0)
    assert answer_entropy_consistency(["1", "2", "3", "4"]) == pytest.approx(0.0)
    assert 0 < answer_entropy_consistency(["1", "1", "2", "2"]) < 1
    assert answer_entropy_consistency([None, None]) == pytest.approx(0.0)


def test_rank_normalise_handles_ties_and_singletons():
    assert list(rank_normalise(pd.Series([10.0, 20.0, 30.0]))) == [0.0, 0.5, 1.0]
    assert list(rank_normalise(pd.Series([1.0, 1.0]))) == [0.5, 0.5]
    assert list(rank_normalise(pd.Series([4.0]))) == [0.5]


def _samples():
    # q1: confident and agreeing; q2: split; q3: nothing extractable, TA unsure.
    return pd.DataFrame({
        "id": ["q1"] * 3 + ["q2"] * 3 + ["q3"] * 3,
        "k": [0, 1, 2] * 3,
        "answer": ["5", "5", "5", "1", "2", "1", None, None, None],
        "ta_conf": [0.9, 0.95, 0.92, 0.5, 0.4, 0.6, 0.1, 0.2, 0.15],
    })


def test_question_signals_and_selection_pick_the_unsure():
    signals = question_signals(_samples(), SignalsConfig())
    assert list(signals["id"]) == ["q1", "q2", "q3"]
    assert list(signals["self_consistency"]) == pytest.approx([1.0, 2 / 3, 0.0])
    assert signals.loc[0, "student_majority"] == "5" and pd.isna(signals.loc[2, "student_majority"])
    chosen = select(signals, 1, "signals", SignalsConfig(), seed=0)
    assert list(chosen.loc[chosen.selected, "id"]) == ["q3"]
    scores = selection_score(signals, SignalsConfig())
    assert scores.is_monotonic_increasing


def test_each_signal_alone_decides_alone():
    signals = pd.DataFrame({"id": ["a", "b"], "self_consistency": [1.0, 0.2], "ta_conf_student": [0.1, 0.9]})
    by_sc = select(signals, 1, "signals", SignalsConfig(w_ta=0.0), seed=0)
    by_ta = select(signals, 1, "signals", SignalsConfig(w_sc=0.0), seed=0)
    assert by_sc.loc[by_sc.selected, "id"].item() == "b"
    assert by_ta.loc[by_ta.selected, "id"].item() == "a"
    with pytest.raises(ValueError, match="both 0"):
        selection_score(signals, SignalsConfig(w_sc=0.0, w_ta=0.0))


def test_random_selection_is_seeded_and_exact_in_count():
    signals = pd.DataFrame({"id": [f"q{i}" for i in range(50)], "self_consistency": np.nan, "ta_conf_student": np.nan})
    a = select(signals, 10, "random", SignalsConfig(), seed=1)
    b = select(signals, 10, "random", SignalsConfig(), seed=1)
    assert a.selected.sum() == 10 and list(a.selected) == list(b.selected)


def test_trust_weights():
    conf = pd.Series([0.1, 0.5, 0.9, 0.95, 0.3])
    weights = trust_weights(conf, TrustConfig(mode="weight", scale="rank", min_weight=0.1))
    assert weights.min() == pytest.approx(0.1) and weights.max() == pytest.approx(1.0)
    assert weights.iloc[0] < weights.iloc[1] < weights.iloc[2]
    kept = trust_weights(conf, TrustConfig(mode="filter", scale="rank", filter_quantile=0.4))
    assert list(kept) == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert list(trust_weights(conf, TrustConfig(mode="none"))) == [1.0] * 5


def test_calibrated_trust_leaves_a_right_teacher_alone():
    rng = np.random.default_rng(0)
    reference = rng.beta(8, 2, size=2000)  # the TA's confidence in outputs known to be right
    right = pd.Series(rng.beta(8, 2, size=1000))  # a teacher that is always right: the same distribution
    for mode, cost in (("weight", 0.05), ("filter", 0.05)):
        weights = trust_weights(right, TrustConfig(mode=mode, scale="calibrated", calibration_quantile=0.05,
                                                   min_weight=0.0), reference)
        assert weights.mean() > 1 - cost - 0.02  # at most about the quantile is touched
    # Rank-normalised trust down-weights half the same purchase, right as it is.
    assert trust_weights(right, TrustConfig(mode="weight", scale="rank", min_weight=0.1)).mean() < 0.6


def test_calibrated_trust_drops_outputs_below_the_right_ones_tail():
    reference = np.linspace(0.5, 1.0, 101)  # 5% quantile at 0.525
    conf = pd.Series([0.1, 0.52, 0.53, 0.9])
    kept = trust_weights(conf, TrustConfig(mode="filter", scale="calibrated", calibration_quantile=0.05), reference)
    assert list(kept) == [0.0, 0.0, 1.0, 1.0]
    weights = trust_weights(conf, TrustConfig(mode="weight", scale="calibrated", calibration_quantile=0.05,
                                              min_weight=0.1), reference)
    assert weights.iloc[0] == pytest.approx(0.1) and weights.iloc[3] == 1.0
    assert 0.1 < weights.iloc[1] < 1.0  # in the tail: scaled by how far into it
    with pytest.raises(ValueError, match="known to be right"):
        trust_weights(conf, TrustConfig(mode="weight", scale="calibrated"), None)
