"""A verifier: the TA fine-tuned to tell right from wrong teacher outputs, on the gold-labelled
outputs of trust.calibration_split (both kinds), then asked of each bought output.

It learns to continue a question and an output with a verdict word ('right' after a right
output, 'wrong' after a wrong one, weighted so both kinds count alike); its value is
p(right) = 1 / (1 + exp(log p(wrong verdict) - log p(right verdict))), two scorings an output
of kind 'sum', so it works through every scorer backend once its folder is the model. Where the
tokenizer has no such words (the synthetic task's word list), two single tokens it has stand in.

The labelled outputs are valued by verifiers fine-tuned without them (two folds), which is what
the 'calibrated' scale places trust on; the one that values bought outputs is fine-tuned on all.
Fine-tuning runs in the driver's process (trust.verifier: epochs, lr, batch size), meant for a
TA of up to a few hundred million parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import SignalValues, TrustSignal
from .combined import Learnt

VERDICT_WORDS = (("right", "wrong"), ("yes", "no"), ("+", "-"))
PREFIX = "verdict:"


def verdicts_for(tokenizer) -> tuple[str, str]:
    """Two words the tokenizer has, each one token: the first pair of VERDICT_WORDS that fits."""
    for pair in VERDICT_WORDS:
        ids = [tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in pair]
        if all(len(i) == 1 and i[0] != tokenizer.unk_token_id for i in ids) and ids[0] != ids[1]:
            return pair
    raise ValueError("the TA's tokenizer has none of the verdict word pairs " + ", ".join(map(str, VERDICT_WORDS)))


def with_verdict(text: str, verdict: str) -> str:
    return f"{(text or '').rstrip()} {verdict}"


class Verifier(TrustSignal):
    def __init__(self, model: pd.DataFrame | None = None):
        # LEARNED's rows name the verdict words (feature 'verdict:<word>', weight 1 for right).
        self.verdicts = None
        if model is not None:
            words = {row.feature[len(PREFIX):]: row.weight for row in model.itertuples()}
            self.verdicts = (next(w for w, v in words.items() if v == 1), next(w for w, v in words.items() if v == 0))

    def values(self, outputs, score):
        """p(right) of each output, from two scorings by the verifier (`score` is bound to it)."""
        if self.verdicts is None:
            raise RuntimeError("the verifier values outputs only after it has learnt (trust.learn)")
        return SignalValues(pd.Series(_p_right(outputs, score, self.verdicts), index=outputs.index),
                            ta_scored=2 * len(outputs))

    def learn(self, labelled: pd.DataFrame, score, tools) -> Learnt:
        """Fine-tune the TA on labelled outputs (id, k, question, text, right) into tools.folder."""
        from ...modeling import load_tokenizer
        from .combined import FEWEST_OF_A_CLASS

        right = labelled["right"].to_numpy(dtype=bool)
        verdicts = verdicts_for(load_tokenizer(tools.ta))
        model = pd.DataFrame({"feature": [PREFIX + verdicts[0], PREFIX + verdicts[1]], "weight": [1.0, 0.0],
                              "mean": 0.0, "scale": 1.0})
        summary = {"right": int(right.sum()), "wrong": int((~right).sum()), "verdicts": list(verdicts)}
        if min(right.sum(), (~right).sum()) < FEWEST_OF_A_CLASS:
            raise ValueError(f"the verifier needs right and wrong labelled outputs, at least {FEWEST_OF_A_CLASS} of "
                             f"each; trust.calibration_split gave {summary['right']} right and {summary['wrong']} "
                             "wrong: buy more (trust.calibration_questions) or use trust.signal 'combined'")
        # Cross-fitted values: two verifiers, each fine-tuned on one half, valuing the other half.
        halves = np.random.default_rng(0).permutation(len(labelled)) % 2
        values = np.zeros(len(labelled))
        for half in (0, 1):
            folder = Path(tools.folder).with_name(f"{Path(tools.folder).name}_fold{half}")
            tools.fine_tune(_training_rows(labelled[halves != half], verdicts), folder)
            held = labelled[halves == half]
            values[halves == half] = _p_right(held, tools.scorer_for(str(folder)), verdicts)
        tools.fine_tune(_training_rows(labelled, verdicts), Path(tools.folder))
        from ...tables import auroc

        summary["cross_fitted_auroc"] = auroc(values[right], values[~right])
        return Learnt(model, values, ta_scored=4 * len(labelled), summary=summary)


def _p_right(outputs: pd.DataFrame, score, verdicts: tuple[str, str]) -> np.ndarray:
    rows = outputs[["id", "k", "question", "text"]].reset_index(drop=True)
    both = pd.concat([rows.assign(text=[with_verdict(t, v) for t in rows["text"]], k=2 * rows["k"].astype(int) + i)
                      for i, v in enumerate(verdicts)], ignore_index=True)
    logp = score(both, confidence="sum").to_numpy(dtype=float)
    return 1 / (1 + np.exp(np.clip(logp[len(rows):] - logp[:len(rows)], -30, 30)))


def _training_rows(labelled: pd.DataFrame, verdicts: tuple[str, str]) -> pd.DataFrame:
    """(prompt, given, target, weight): the question, the output read but not learnt (the
    verifier must not learn to write wrong rationales), its verdict learnt; each kind weighs half."""
    from ...tasks.prompts import student_prompt, student_target

    right = labelled["right"].to_numpy(dtype=bool)
    weight = np.where(right, 0.5 / max(1, right.sum()), 0.5 / max(1, (~right).sum())) * len(labelled)
    return pd.DataFrame({"prompt": [student_prompt(q) for q in labelled["question"]],
                         "given": [student_target(t or "") for t in labelled["text"]],
                         "target": [" " + (verdicts[0] if r else verdicts[1]) for r in right], "weight": weight})
