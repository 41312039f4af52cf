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
    chosen = select(signals, 1, "unsure_first", SignalsConfig(), seed=0)
    assert list(chosen.loc[chosen.selected, "id"]) == ["q3"]
    assert chosen["score"].is_monotonic_increasing


def test_each_signal_alone_decides_alone():
    signals = pd.DataFrame({"id": ["a", "b"], "self_consistency": [1.0, 0.2], "ta_conf_student": [0.1, 0.9]})
    by_sc = select(signals, 1, "unsure_first", SignalsConfig(w_ta=0.0), seed=0)
    by_ta = select(signals, 1, "unsure_first", SignalsConfig(w_sc=0.0), seed=0)
    assert by_sc.loc[by_sc.selected, "id"].item() == "b"
    assert by_ta.loc[by_ta.selected, "id"].item() == "a"
    with pytest.raises(ValueError, match="both 0"):
        select(signals, 1, "unsure_first", SignalsConfig(w_sc=0.0, w_ta=0.0), seed=0)


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
    assert {"random", "unsure_first", "learnable"} <= set(choices.names("selection.strategy"))
    assert all(isinstance(rule_named(name), SelectionRule) for name in choices.names("selection.strategy"))
    with pytest.raises(ValueError, match="unknown selection.strategy 'nope'"):
        rule_named("nope")


def test_config_knows_which_rules_need_the_students_samples():
    for name in choices.names("selection.strategy"):
        config = load_config(overrides=[f"method={'both' if name == 'unsure_first' else name}_none"])
        assert config.selection.strategy == name
        assert config.selection_uses_signals == (name not in ("random", "progress", "shortest", "regime", "committee"))
        assert config.selection_measures_progress == (name == "progress")  # trains round students, samples none
        assert config.selection_probes_slices == (name == "regime")  # trains probe students, no round student
        assert config.selection_trains_committee == (name == "committee")  # members sample, no round student


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


def proximal_signals() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["solved", "beyond_far", "beyond_near", "partly_most", "partly_half"],
        "self_consistency": [1.0, 0.25, 0.25, 0.5, 0.5],
        "ta_conf_student": [0.9, 0.001, 0.2, 0.6, 0.4],
        "num_samples": 4,
        "ta_pass_share": [1.0, 0.0, 0.0, 0.75, 0.5],
    })


def test_proximal_buys_the_partly_solved_then_the_nearest_of_what_is_beyond():
    chosen = select(proximal_signals(), 3, "proximal", SignalsConfig(), seed=0)
    order = chosen.sort_values("score", ascending=False)["id"].tolist()
    # Partly solved first, the less solved of them first; then nothing looks right, the nearest
    # first (the opposite of the paper's rule, which buys the farthest); solved questions last.
    assert order == ["partly_half", "partly_most", "beyond_near", "beyond_far", "solved"]
    assert set(chosen.loc[chosen.selected, "id"]) == {"partly_half", "partly_most", "beyond_near"}


def test_proximal_follows_the_student_not_the_question():
    # The same questions, a stronger student: what was beyond it is now partly solved and is bought.
    stronger = proximal_signals().assign(ta_pass_share=[1.0, 0.25, 1.0, 1.0, 1.0])
    chosen = select(stronger, 1, "proximal", SignalsConfig(), seed=0)
    assert chosen.loc[chosen.selected, "id"].item() == "beyond_far"


def test_proximal_without_the_pass_share_says_what_it_needs():
    with pytest.raises(ValueError, match="ta_pass_share"):
        select(proximal_signals().drop(columns=["ta_pass_share"]), 1, "proximal", SignalsConfig(), seed=0)


def test_the_pass_share_is_the_share_of_samples_at_or_above_the_level():
    samples = pd.DataFrame({"id": ["a"] * 4 + ["b"] * 4, "k": list(range(4)) * 2,
                            "answer": ["1", "1", "2", None, "3", "3", "3", "3"],
                            "ta_conf": [0.9, 0.5, 0.49, 0.1, 0.01, 0.02, 0.03, 0.04]})
    signals = question_signals(samples, SignalsConfig(), pass_level=0.5).set_index("id")
    assert signals.loc["a", "ta_pass_share"] == 0.5 and signals.loc["b", "ta_pass_share"] == 0.0
    assert question_signals(samples, SignalsConfig())["ta_pass_share"].isna().all()


def test_a_rule_on_the_calibration_scale_makes_the_run_calibrate():
    config = load_config(overrides=["method=proximal_none"])
    assert config.selection_needs_calibration and config.calibrates_trust and not config.trusts_teacher
    assert not load_config(overrides=["method=random_none", "train.final_pick=last"]).calibrates_trust


def test_a_rule_on_the_calibration_scale_without_references_is_a_config_error(tmp_path):
    from tadistill.config import ConfigError

    data = ["data.source=files", f"data.files={{train: [{tmp_path}/t.jsonl], test: [{tmp_path}/t.jsonl]}}",
            "data.preset=gsm8k"]
    with pytest.raises(ConfigError, match="selection.strategy 'proximal'.*calibration_files"):
        load_config(None, [*data, "method=proximal_none"])
    assert load_config(None, [*data, "method=proximal_none", "trust.calibration_files=[right.jsonl]"]).calibrates_trust


def _candidates(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"q{i:03d}" for i in range(n)], "self_consistency": np.linspace(0, 1, n),
                         "ta_conf_student": np.linspace(0, 1, n)})


def test_a_random_floor_buys_its_share_at_random_and_the_rule_picks_the_rest():
    from tadistill.config import SelectionConfig

    signals = _candidates(100)
    top = select(signals, 20, "unsure_first", SignalsConfig(), seed=3)
    floored = select(signals, 20, "unsure_first", SignalsConfig(), seed=3, selection=SelectionConfig(random_floor=0.25))
    assert floored["selected"].sum() == 20 and floored["at_random"].sum() == 5
    by_rule = floored[floored["selected"] & ~floored["at_random"]]
    assert set(by_rule["id"]) <= set(top[top["selected"]]["id"]) | set(floored[floored["at_random"]]["id"])
    unchanged = select(signals, 20, "unsure_first", SignalsConfig(), seed=3, selection=SelectionConfig())
    assert unchanged["selected"].tolist() == top["selected"].tolist()  # no floor, top: as before


def test_rank_sampling_buys_mostly_but_not_only_the_highest_priorities():
    from tadistill.config import SelectionConfig

    signals = _candidates(200)
    picks = [select(signals, 20, "unsure_first", SignalsConfig(), seed=s, selection=SelectionConfig(sampling="rank"))
             for s in range(20)]
    top = set(select(signals, 20, "unsure_first", SignalsConfig(), seed=0).query("selected")["id"])
    chosen = [set(p.query("selected")["id"]) for p in picks]
    assert all(len(c) == 20 for c in chosen) and any(c != top for c in chosen)
    mean_score = np.mean([p.query("selected")["score"].mean() for p in picks])
    assert mean_score > signals.assign(score=picks[0]["score"])["score"].mean()  # rank-weighted: above the mean


def test_progress_samples_each_group_in_proportion_to_its_weight():
    signals = _candidates(400).assign(progress_weight=[1.0 / 100] * 100 + [0.0] * 300)
    chosen = select(signals, 50, "progress", SignalsConfig(), seed=1)
    assert chosen.query("selected").index.max() < 100  # only the group that showed progress
    even = select(_candidates(400).assign(progress_weight=1.0), 200, "progress", SignalsConfig(), seed=1)
    assert 70 < (even.query("selected").index < 200).sum() < 130  # about half from each half


def test_shortest_buys_the_shortest_questions_first():
    signals = _candidates(5).assign(question_length=[40, 10, 30, 20, 50])
    chosen = select(signals, 2, "shortest", SignalsConfig(), seed=0)
    assert sorted(chosen.query("selected")["question_length"]) == [10, 20]
