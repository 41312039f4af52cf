import numpy as np
import pandas as pd
import pytest

from tadistill.config import ConfigError, TrustConfig, choices, load_config
from tadistill.signals.trust import Placement, TrustMode, TrustScale, training_rows_for, trust_weights


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


def test_auto_must_be_resolved_first():
    with pytest.raises(ValueError, match="resolved"):
        trust_weights(pd.Series([0.5]), TrustConfig(mode="weight", scale="auto"))


def test_modes_turn_one_placement_into_weights():
    placement = Placement(np.array([0.0, 0.5, 1.0]), np.array([False, True, True]))
    config = TrustConfig(min_weight=0.2)
    mode = lambda name: choices.load("trust.mode", name)()  # noqa: E731
    assert list(mode("none").weights(placement, config)) == [1.0, 1.0, 1.0]
    assert list(mode("weight").weights(placement, config)) == pytest.approx([0.2, 0.6, 1.0])
    assert list(mode("filter").weights(placement, config)) == [0.0, 1.0, 1.0]
    # The answer's weight is the one 'weight' gives the whole output.
    assert list(mode("answer_weight").weights(placement, config)) == pytest.approx([0.2, 0.6, 1.0])


def _rows(weights):
    targets = [" 10 - 8 = 2. 2 + 7 = 9. The answer is 9.", " 2 + 7 = 9. So 9 pens.", " The answer is 4.",
               " 3 + 3 = 6. The answer is 6."]
    return pd.DataFrame({"id": list("abcd"), "prompt": "Question: ?\nAnswer:", "target": targets, "weight": weights})


def test_a_whole_output_mode_drops_what_it_weighs_zero_and_adds_nothing():
    rows = _rows([1.0, 0.0, 0.5, 0.0])
    for mode in ("none", "weight", "filter"):
        shaped = training_rows_for(rows, TrustConfig(mode=mode))
        assert list(shaped.columns) == list(rows.columns) and list(shaped["id"]) == ["a", "c"]


def test_answer_weight_rows_say_where_each_answer_starts():
    rows = _rows([1.0, 0.3, 0.0, 0.0])
    shaped = training_rows_for(rows, TrustConfig(mode="answer_weight"))
    starts = dict(zip(shaped["id"], shaped["answer_start"]))
    target = dict(zip(shaped["id"], shaped["target"]))
    assert target["a"][starts["a"]:] == "The answer is 9."
    # No answer stated: the weight scales the whole output, as under 'weight'.
    assert starts["b"] == 0
    # A weight of 0 silences only the answer: 'd' keeps its rationale, 'c' (all answer) has nothing left.
    assert list(shaped["id"]) == ["a", "b", "d"] and target["d"][starts["d"]:] == "The answer is 6."


def test_the_choice_table_feeds_the_config():
    for mode in choices.names("trust.mode"):
        assert isinstance(choices.load("trust.mode", mode)(), TrustMode)
        assert load_config(overrides=[f"method=both_{mode}"]).trust_uses_ta == (mode != "none")
    assert all(isinstance(choices.load("trust.scale", s)(), TrustScale) for s in choices.names("trust.scale"))
    with pytest.raises(Exception, match="trust.scale"):  # 'auto' is the config's, resolved before weighting
        load_config(overrides=["trust.scale=nope"])
    with pytest.raises(ConfigError, match="trust.mode 'nope'"):
        load_config(overrides=["trust.mode=nope"])
    assert load_config(overrides=["method=both_none"]).trusts_teacher is False
    # A scale that needs outputs known to be right: the synthetic task has them.
    assert load_config(overrides=["trust.scale=calibrated"]).calibrates_trust
    assert not load_config(overrides=["trust.scale=rank", "train.final_pick=last"]).calibrates_trust
