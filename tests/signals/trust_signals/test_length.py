import pandas as pd

from tadistill.signals.trust_signals.length import Length


def test_shorter_outputs_are_trusted_more():
    outputs = pd.DataFrame({"id": ["a", "b", "c"], "k": 0, "text": ["short", "a longer output", None]})
    assert Length().values(outputs, None).values.tolist() == [-5.0, -15.0, 0.0]
