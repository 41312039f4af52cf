"""Output length: shorter counted as more likely right, the baseline every signal is reported beside
(on real teachers wrong rationales run longer: docs/results/real.json)."""

from __future__ import annotations

from . import SignalValues, TrustSignal


class Length(TrustSignal):
    def values(self, outputs, score):
        return SignalValues(-outputs["text"].fillna("").str.len().astype(float))
