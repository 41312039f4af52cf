import numpy as np
import pandas as pd
import pytest

from tadistill.config import SignalsConfig, load_config
from tadistill.signals.compute import question_signals
from tadistill.config import choices
from tadistill.signals.selection import SelectionRule, rank_normalise, rule_named, select

from .samples import three_questions


def test_rank_normalise_handles_ties_and_singletons():
    assert list(rank_normalise(pd.Series([10.0, 20.0, 30.0]))) == [0.0, 0.5, 1.0]
    assert list(rank_normalise(pd.Series([1.0, 1.0]))) == [0.5, 0.5]
    assert list(rank_normalise(pd.Series([4.0]))) == [0.5]


def test_the_paper_rule_picks_the_unsure():
    signals = question_signals(three_questions(), SignalsConfig())
    chosen = select(signals, 1, "signals", SignalsConfig(), seed=0)
    assert list(chosen.loc[chosen.selected, "id"]) == ["q3"]
    assert chosen["score"].is_monotonic_increasing


def test_each_signal_alone_decides_alone():
    signals = pd.DataFrame({"id": ["a", "b"], "self_consistency": [1.0, 0.2], "ta_conf_student": [0.1, 0.9]})
    by_sc = select(signals, 1, "signals", SignalsConfig(w_ta=0.0), seed=0)
    by_ta = select(signals, 1, "signals", SignalsConfig(w_sc=0.0), seed=0)
    assert by_sc.loc[by_sc.selected, "id"].item() == "b"
    assert by_ta.loc[by_ta.selected, "id"].item() == "a"
    with pytest.raises(ValueError, match="both 0"):
        select(signals, 1, "signals", SignalsConfig(w_sc=0.0, w_ta=0.0), seed=0)


def test_random_selection_is_seeded_and_exact_in_count():
    signals = pd.DataFrame({"id": [f"q{i}" for i in range(50)], "self_consistency": np.nan, "ta_conf_student": np.nan})
    a = select(signals, 10, "random", SignalsConfig(), seed=1)
    b = select(signals, 10, "random", SignalsConfig(), seed=1)
    assert a.selected.sum() == 10 and list(a.selected) == list(b.selected)


def test_learnable_is_unsure_first_then_closest_to_right():
    signals = pd.DataFrame({
        "id": ["sure", "unsure_hopeless", "unsure_close", "half"],
        "self_consistency": [1.0, 0.25, 0.25, 0.5],
        "ta_conf_student": [0.99, 0.001, 0.2, 0.9],
        "num_samples": 4,
    })
    chosen = select(signals, 3, "learnable", SignalsConfig(), seed=0)
    order = chosen.sort_values("score", ascending=False)["id"].tolist()
    # Equally unsure: the one the TA finds closer to right first; a confident TA never lifts a
    # more self-consistent question over a less self-consistent one.
    assert order == ["unsure_close", "unsure_hopeless", "half", "sure"]
    assert set(chosen.loc[chosen.selected, "id"]) == {"unsure_close", "unsure_hopeless", "half"}


def test_rules_come_from_the_choice_table_and_are_named_in_errors():
    assert {"random", "signals", "learnable"} <= set(choices.names("selection.strategy"))
    assert all(isinstance(rule_named(name), SelectionRule) for name in choices.names("selection.strategy"))
    with pytest.raises(ValueError, match="unknown selection.strategy 'nope'"):
        rule_named("nope")


def test_config_knows_which_rules_need_the_students_samples():
    for name in choices.names("selection.strategy"):
        config = load_config(overrides=[f"selection.strategy={name}"])
        assert config.selection_uses_signals == (name != "random")


def test_frontier_buys_what_the_student_partly_solves_before_what_is_beyond_it():
    signals = pd.DataFrame({
        "id": ["settled", "beyond", "beyond_closer", "partly", "partly_surer"],
        "self_consistency": [1.0, 0.25, 0.25, 0.5, 0.75],
        "ta_conf_student": [0.9, 0.001, 0.2, 0.3, 0.3],
        "num_samples": 4,
    })
    chosen = select(signals, 2, "frontier", SignalsConfig(), seed=0)
    order = chosen.sort_values("score", ascending=False)["id"].tolist()
    # The partly solved band first (the less sure of it first), then what is beyond the student
    # (least sure first: the paper's priority orders within a band), settled questions last.
    assert order == ["partly", "partly_surer", "beyond", "beyond_closer", "settled"]
    assert set(chosen.loc[chosen.selected, "id"]) == {"partly", "partly_surer"}


def test_frontier_band_follows_the_number_of_samples():
    # With 8 samples an agreement of 0.25 is two samples agreeing: partly solved, not beyond.
    signals = pd.DataFrame({"id": ["a", "b"], "self_consistency": [0.125, 0.25], "ta_conf_student": [0.5, 0.5],
                            "num_samples": 8})
    chosen = select(signals, 1, "frontier", SignalsConfig(), seed=0)
    assert chosen.loc[chosen.selected, "id"].item() == "b"


def test_frontier_is_a_method_preset():
    from tadistill.methods import method

    assert method("frontier_weight").preset["selection.strategy"] == "frontier"
    assert load_config(overrides=["method=frontier_weight"]).selection.strategy == "frontier"
