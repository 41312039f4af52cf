import pandas as pd
import pytest

from tadistill.config import SignalsConfig, choices
from tadistill.signals.compute import agreement, answer_entropy_consistency, question_signals

from .samples import three_questions


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


def test_consistency_measures_are_the_choice_tables():
    assert choices.load("signals.consistency", "agreement") is agreement
    assert choices.load("signals.consistency", "entropy") is answer_entropy_consistency


def test_the_configured_measure_is_used():
    samples = pd.DataFrame({"id": ["q"] * 4, "k": range(4), "answer": ["1", "1", "2", "3"], "ta_conf": 0.5})
    assert question_signals(samples, SignalsConfig()).loc[0, "self_consistency"] == 0.5
    entropy = question_signals(samples, SignalsConfig(consistency="entropy")).loc[0, "self_consistency"]
    assert entropy == pytest.approx(answer_entropy_consistency(["1", "1", "2", "3"]))


def test_question_signals_per_question():
    signals = question_signals(three_questions(), SignalsConfig())
    assert list(signals["id"]) == ["q1", "q2", "q3"]
    assert list(signals["self_consistency"]) == pytest.approx([1.0, 2 / 3, 0.0])
    assert list(signals["ta_conf_student"]) == pytest.approx([0.9233333, 0.5, 0.15])
    assert signals.loc[0, "student_majority"] == "5" and pd.isna(signals.loc[2, "student_majority"])
    assert list(signals["num_samples"]) == [3, 3, 3]
