"""Answer confidence: the TA's probability of the output's final answer given the question and the
rationale before it, p(answer | question, rationale) = exp(log p(whole output) - log p(rationale)),
two scorings of one output by the TA (kind 'sum' of modeling.confidence_of), so it works through
every scorer backend: transformers, vLLM, and a TA behind an OpenAI-compatible endpoint.

Where a long rationale slips one step, the whole-output likelihood averages the slip away among
many easy tokens; a TA that follows the rationale finds the committed answer unlikely when it does
not follow from it. An output that commits to no answer gets 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...tasks.answers import commitment_end
from . import SignalValues, TrustSignal


def split_at_answer(text: str):
    """(rationale up to the commitment, the whole text), or None when it commits to nothing."""
    end = commitment_end(text)
    if end is None or not text[end:].strip():
        return None
    return text[:end].rstrip(), text  # the answer keeps its leading space, as the tokenizer sees it


class AnswerConfidence(TrustSignal):
    def values(self, outputs, score):
        splits = [split_at_answer(t or "") for t in outputs["text"]]
        has = np.array([s is not None for s in splits])
        values = pd.Series(0.0, index=outputs.index)
        if has.any():
            chosen = outputs[has]
            prefixes = chosen.assign(text=[s[0] for s in splits if s is not None])
            whole = chosen.assign(text=[s[1] for s in splits if s is not None])
            # Two rows an output, told apart by k (2k: the rationale, 2k + 1: the whole output).
            both = pd.concat([prefixes.assign(k=2 * prefixes["k"].astype(int)),
                              whole.assign(k=2 * whole["k"].astype(int) + 1)], ignore_index=True)
            logp = score(both[["id", "k", "question", "text"]], confidence="sum").to_numpy(dtype=float)
            rationale, complete = logp[:len(chosen)], logp[len(chosen):]
            values[has] = np.exp(np.minimum(0.0, complete - rationale))
        missing = int((~has).sum())
        notes = [f"{missing} output(s) commit to no answer (answer confidence 0)"] if missing else []
        return SignalValues(values, ta_scored=2 * int(has.sum()), notes=notes)
