import pandas as pd
import pytest

from tadistill.signals.trust_signals.agreement import TeacherAgreement


def test_each_output_is_valued_by_how_many_of_its_questions_other_rationales_agree():
    outputs = pd.DataFrame({"id": ["q1"] * 4 + ["q2", "q3", "q3"], "k": [0, 1, 2, 3, 0, 0, 1],
                            "answer": ["7", "7", "8", None, "5", "2", "2"]})
    valued = TeacherAgreement().values(outputs, score=None)
    assert valued.values.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 0.0, 0.5, 1.0, 1.0])
    assert valued.notes == ["1 output(s) were their question's only rationale (agreement 0.5)"]


def test_it_needs_several_rationales_a_request_and_cannot_be_calibrated():
    from tadistill.config import load_config

    with pytest.raises(ValueError, match="trust.signal 'teacher_agreement' compares a question's several"):
        load_config(None, ["method=full", "trust.signal=teacher_agreement"])
    with pytest.raises(ValueError, match="cannot be computed on outputs known to be right"):
        load_config(None, ["method=full", "trust.signal=teacher_agreement", "teacher.n=3", "trust.scale=calibrated"])
    config = load_config(None, ["method=full", "trust.signal=teacher_agreement", "teacher.n=3"])
    assert config.trust_scale == "rank"  # 'auto' on the synthetic task would be 'calibrated' for the TA's signal
    assert load_config(None, ["method=full"]).trust_scale == "calibrated"
    assert TeacherAgreement().reference(pd.DataFrame(), None, None) is None


def test_the_majority_is_the_answer_most_rationales_give_and_a_tie_keeps_both():
    from tadistill.signals.trust_signals.agreement import in_majority

    outputs = pd.DataFrame({"id": ["q1"] * 4 + ["q2", "q3", "q3", "q4", "q4"], "k": [0, 1, 2, 3, 0, 0, 1, 0, 1],
                            "answer": ["7", "7", "8", None, "5", "2", "3", None, None]})
    assert in_majority(outputs).tolist() == [True, True, False, False, True, True, True, True, True]
