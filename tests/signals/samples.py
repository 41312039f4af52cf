"""Student samples of three questions, shared by the signal tests."""

import pandas as pd


def three_questions() -> pd.DataFrame:
    # q1: confident and agreeing; q2: split; q3: nothing extractable, TA unsure.
    return pd.DataFrame({
        "id": ["q1"] * 3 + ["q2"] * 3 + ["q3"] * 3,
        "k": [0, 1, 2] * 3,
        "answer": ["5", "5", "5", "1", "2", "1", None, None, None],
        "ta_conf": [0.9, 0.95, 0.92, 0.5, 0.4, 0.6, 0.1, 0.2, 0.15],
    })
