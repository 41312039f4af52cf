import numpy as np
import pandas as pd

from tadistill.signals.trust_signals.ta_likelihood import TALikelihood


def test_the_default_signal_is_the_tas_confidence_in_the_whole_output(ta_score):
    outputs = pd.DataFrame({"id": ["a", "b"], "k": [0, 1], "question": ["Tom has 3 apples. Tom buys 4 more apples. "
                                                                          "How many apples does Tom have now?"] * 2,
                            "text": ["Tom has 3 + 4 = 7 apples. The answer is 7.", "Blue cats fly. The answer is 12."]})
    valued = TALikelihood().values(outputs, ta_score)
    assert valued.values.tolist() == ta_score(outputs).tolist() and valued.ta_scored == 2
    # Its reference on outputs known to be right is what the calibration step scored already.
    assert TALikelihood().reference(outputs, None, np.array([0.5, 0.7])).tolist() == [0.5, 0.7]
