import numpy as np
import pandas as pd
import pytest

from tadistill.signals.trust_signals.combined import INTERCEPT, Combined, feature_names
from tadistill.synthetic.problems import generate_problems
from tadistill.synthetic.teacher_server import TeacherProfile, teacher_solution


def _teacher_outputs(count: int, seed: int, error_rate: float = 0.4) -> pd.DataFrame:
    """The simulated teacher's outputs (slipped steps and wrong last numbers), labelled by gold."""
    profile = TeacherProfile(error_rate, seed=seed, slip_share=0.5, min_steps=2, max_steps=4)
    problems = generate_problems(count, seed=seed, min_steps=2, max_steps=4)
    solved = [teacher_solution(p, profile) for p in problems]
    return pd.DataFrame({"id": [f"q{seed}-{i}" for i in range(count)], "k": 0,
                         "question": [p.question() for p in problems], "text": [t for t, _ in solved],
                         "answer": [str(p.answer) if right else "wrong" for p, (_, right) in zip(problems, solved)],
                         "answer_type": "number", "right": [right for _, right in solved]})


def test_it_learns_right_from_wrong_and_values_new_outputs_with_what_it_learnt(ta_score):
    labelled = _teacher_outputs(60, seed=11)
    assert 10 < (~labelled["right"]).sum() < 50
    learnt = Combined().learn(labelled, ta_score)
    summary = learnt.summary
    assert set(summary["coefficients"]) == {"length", "ta_likelihood", "answer_confidence", "arithmetic", INTERCEPT}
    assert summary["right"] + summary["wrong"] == 60 and learnt.ta_scored == 60 * 3
    # Cross-fitted on the labelled outputs, and on outputs it never saw: right ones trusted more.
    right = labelled["right"].to_numpy()
    assert learnt.values[right].mean() > learnt.values[~right].mean()
    assert summary["cross_fitted_auroc"] > 0.75, summary
    fresh = _teacher_outputs(40, seed=12)
    valued = Combined(learnt.model).values(fresh, ta_score)
    assert ((valued.values > 0) & (valued.values < 1)).all() and valued.ta_scored == 40 * 3
    assert valued.values[fresh["right"]].mean() > valued.values[~fresh["right"]].mean()


def test_with_one_kind_of_output_it_learns_nothing_and_trusts_all_alike(ta_score):
    labelled = _teacher_outputs(20, seed=5, error_rate=0.0)
    learnt = Combined().learn(labelled, ta_score)
    assert "too few of one kind" in learnt.notes[0]
    valued = Combined(learnt.model).values(_teacher_outputs(8, seed=6), ta_score)
    assert np.allclose(valued.values, valued.values.iloc[0])


def test_agreement_enters_only_where_questions_have_several_rationales():
    one = pd.DataFrame({"id": ["a", "b"], "k": [0, 0], "answer_type": "number"})
    several = pd.DataFrame({"id": ["a", "a"], "k": [0, 1], "answer_type": "choice"})
    assert feature_names(one) == ["length", "ta_likelihood", "answer_confidence", "arithmetic"]
    assert feature_names(several) == ["length", "ta_likelihood", "answer_confidence", "teacher_agreement"]


def test_it_refuses_to_value_before_it_has_learnt():
    with pytest.raises(RuntimeError, match="trust.learn"):
        Combined().values(pd.DataFrame({"id": ["a"], "k": [0], "text": ["x"]}), None)
