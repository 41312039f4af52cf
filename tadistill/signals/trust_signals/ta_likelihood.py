"""The TA's length-normalised likelihood of the whole output given the question
(inference.ta_confidence: 'min' or 'mean'), the paper's teacher-side signal and the default."""

from __future__ import annotations

from . import SignalValues, TrustSignal


class TALikelihood(TrustSignal):
    def values(self, outputs, score):
        rows = outputs[["id", "k", "question", "text"]]
        return SignalValues(score(rows), ta_scored=len(rows))

    def reference(self, known_right, score, ta_conf):
        return ta_conf  # the calibration step has scored them already
