import math

import pandas as pd
import pytest

from tadistill.signals.trust_signals.answer_confidence import AnswerConfidence, split_at_answer
from tadistill.synthetic.problems import generate_problems, gold_solution


def _outputs():
    problems = generate_problems(6, seed=3, min_steps=2, max_steps=3)
    right = [gold_solution(p) for p in problems]
    # The same rationale committing to another answer: one slip at the very end.
    wrong = [text.rsplit("The answer is", 1)[0] + f"The answer is {p.answer + 3}." for p, text in zip(problems, right)]
    return pd.DataFrame({"id": [f"q{i}" for i in range(6)] * 2, "k": [0] * 6 + [1] * 6,
                         "question": [p.question() for p in problems] * 2, "text": right + wrong,
                         "answer_type": "number"})


def test_the_answer_that_follows_from_the_rationale_is_the_likely_one(ta_score):
    outputs = _outputs()
    valued = AnswerConfidence().values(outputs, ta_score)
    right, wrong = valued.values[:6].to_numpy(), valued.values[6:].to_numpy()
    assert ((0 < valued.values) & (valued.values <= 1)).all()
    assert (right > wrong).all(), (right, wrong)
    assert valued.ta_scored == 12 * 2


def test_it_is_the_ratio_of_two_scorings(ta_score):
    outputs = _outputs().iloc[:1]
    rationale, whole = split_at_answer(outputs["text"].iloc[0])
    assert whole == outputs["text"].iloc[0] and rationale.endswith("The answer is")
    logp = ta_score(pd.concat([outputs.assign(text=rationale, k=0), outputs.assign(text=whole, k=1)],
                              ignore_index=True), confidence="sum")
    expected = math.exp(logp[1] - logp[0])
    assert AnswerConfidence().values(outputs, ta_score).values.iloc[0] == pytest.approx(expected, rel=1e-6)


def test_an_output_that_commits_to_no_answer_gets_nothing(ta_score):
    outputs = pd.DataFrame({"id": ["a", "b"], "k": 0, "question": ["What is 2 + 2?"] * 2,
                            "text": ["2 + 2 = 4.", "The answer is"], "answer_type": "number"})
    valued = AnswerConfidence().values(outputs, ta_score)
    assert valued.values.tolist() == [0.0, 0.0] and valued.ta_scored == 0
    assert "2 output(s) commit to no answer" in valued.notes[0]
