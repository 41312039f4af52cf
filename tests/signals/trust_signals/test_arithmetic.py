import pandas as pd

from tadistill.signals.trust_signals.arithmetic import ArithmeticCheck, arithmetic_claims, share_that_hold


def test_a_stated_calculation_that_does_not_hold_is_found():
    # PaLM on SVAMP: the sum is written down wrong, the committed expression is right.
    claims = arithmetic_claims("So 16 + 71 - 2 = 87. The answer is (16 + 71 - 2).")
    assert [(c.expression, c.stated, c.holds) for c in claims] == [("16 + 71 - 2", "87", False)]


def test_the_forms_real_teachers_write_are_read():
    text = ("they cost 600/10 = $<<600/10=60.0>>60.0 a bottle, 60*.5=$<<60*.5=30.0>>30.0 more; 1,000 + 200 = 1,200 "
            "people; 10 / 3 = 3.33 each; 12 x 3 = 36 eggs; (that is 3 * 4 = 12) and 2+2=5")
    claims = arithmetic_claims(text)
    assert [c.expression for c in claims] == ["600/10", "60*.5", "1,000 + 200", "10 / 3", "12 x 3", "3 * 4", "2+2"]
    assert [c.holds for c in claims] == [True] * 6 + [False]
    assert share_that_hold(text) == 6 / 7


def test_equations_with_unknowns_and_code_are_not_claims():
    assert arithmetic_claims("$$10x + 1.5(10x) = 600$$ so x = 24") == []
    assert arithmetic_claims("__import__('os').system('x') + 1 = 2") == []
    assert share_that_hold("No numbers here. The answer is yes.") is None


def test_the_signal_trusts_rationales_whose_arithmetic_holds_and_leaves_other_tasks_alone():
    outputs = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "k": 0,
        "text": ["3 + 4 = 7. The answer is 7.", "3 + 4 = 8. 8 * 2 = 16. The answer is 16.",
                 "Tom has 7. The answer is 7.", "2 + 2 = 5, so the answer is (b) yes."],
        "answer_type": ["number", "number", "number", "choice"],
    })
    valued = ArithmeticCheck().values(outputs, score=None)
    assert valued.values.tolist() == [1.0, 0.5, 1.0, 1.0]
    assert valued.ta_scored == 0 and "1 output(s) of questions whose answer is not a number" in valued.notes[0]
