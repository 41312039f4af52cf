"""Trust signals: one number per bought teacher output, higher meaning more likely right, from
which trust (signals/trust.py: a scale, then a mode) makes its weight in the loss.

One class per file, each registered in config/choices.py under `trust.signal` with the facts the
config checks without importing it (`uses_ta`: the TA scores something; `calibrates`: the signal
can be computed on outputs known to be right, so the 'calibrated' scale can place it;
`several_outputs`: it compares a question's several rationales, teacher.n > 1). A signal reads
the outputs (id, k, question, text, answer, answer_type) and, where it needs the TA, a scorer:
`score(rows, confidence=None) -> the TA's confidence per row` (rows: id, k, question, text; a
confidence kind of modeling.CONFIDENCES, None for inference.ta_confidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

Scorer = Callable[..., pd.Series]


@dataclass
class SignalValues:
    values: pd.Series  # per output, aligned with the outputs' index; higher = more trusted
    ta_scored: int = 0  # texts the TA scored for it (its cost besides the teacher's)
    notes: list[str] = field(default_factory=list)


class TrustSignal:
    def values(self, outputs: pd.DataFrame, score: Optional[Scorer]) -> SignalValues:
        raise NotImplementedError

    def reference(self, known_right: pd.DataFrame, score: Optional[Scorer],
                  ta_conf: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The signal on outputs known to be right (question, text, answer, answer_type), for the
        'calibrated' scale; `ta_conf` is the TA's whole-output confidence in them, already computed."""
        return self.values(known_right, score).values.to_numpy(dtype=float)
