"""Trust in the teacher's outputs, registered in one place: how the TA's confidence in a bought
output becomes its weight in the loss.

Two registries, each chosen once from the config:

- a *scale* (`trust.scale`) places each confidence: a degree of trust in [0, 1] and whether the
  output passes a filter. 'calibrated' places it among the TA's confidences in outputs known to
  be right (fixed before any purchase), 'rank' among the other outputs of the same purchase;
- a *mode* (`trust.mode`) turns the placement into weights: 'none' ignores it, 'weight' scales
  each output's loss by its degree (floored at trust.min_weight), 'filter' drops what fails,
  'answer_weight' scales only its answer's tokens as 'weight' scales the whole output. A mode
  also shapes the training rows (`training_rows_for`): which ones are dropped, and, for
  'answer_weight', where each target's answer starts.

A new scale or mode is one class here, its line in the config's choice table (config/choices.py:
its name, summary and facts) and its test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

import numpy as np
import pandas as pd

from ..config import choices
from ..tasks.answers import answer_sentence_start
from .selection import rank_normalise

if TYPE_CHECKING:
    from ..config import TrustConfig


class Placement(NamedTuple):
    degree: np.ndarray  # trust in [0, 1]
    passes: np.ndarray  # bool: kept by a filter


class TrustScale:
    def place(self, confidence: pd.Series, config: "TrustConfig", reference: Optional[np.ndarray]) -> Placement:
        raise NotImplementedError


class TrustMode:
    def weights(self, placement: Placement, config: "TrustConfig") -> np.ndarray:
        raise NotImplementedError

    def training_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows (prompt, target, weight) a student learns from: a weight scales the whole
        output's loss, so a weight of 0 leaves nothing to learn and drops the row."""
        return rows[rows["weight"] > 0].reset_index(drop=True)


class CalibratedScale(TrustScale):
    """Against the TA's confidence in outputs known to be right (fixed before any purchase)."""

    def place(self, confidence, config, reference):
        if reference is None or len(reference) == 0:
            raise ValueError("trust.scale 'calibrated' needs the TA's confidence in outputs known to be right")
        # Share of right outputs at most this confident: the empirical CDF of the reference.
        share = np.searchsorted(np.sort(np.asarray(reference, dtype=float)), confidence.to_numpy(dtype=float),
                                side="right") / len(reference)
        q = config.calibration_quantile
        return Placement(np.minimum(1.0, share / q), share >= q)


class RankScale(TrustScale):
    """Rank within the purchase."""

    def place(self, confidence, config, reference):
        ranks = rank_normalise(confidence).to_numpy(dtype=float)
        return Placement(ranks, ranks >= config.filter_quantile)


class NoTrust(TrustMode):
    """Every bought output counts fully."""

    def weights(self, placement, config):
        return np.ones(len(placement.degree))


class WeightByTrust(TrustMode):
    """Each output's loss scaled by its trust, floored at trust.min_weight."""

    def weights(self, placement, config):
        return config.min_weight + (1 - config.min_weight) * placement.degree


class FilterByTrust(TrustMode):
    """Outputs the TA distrusts dropped."""

    def weights(self, placement, config):
        return placement.passes.astype(float)


class WeightAnswerByTrust(WeightByTrust):
    """The trust weight on the answer's tokens alone; the rationale's keep full weight.

    A wrong output is mostly one slipped step in an otherwise sound chain: its other steps are
    worth learning, and its answer is what the slip makes wrong. So a right output distrusted by
    mistake loses almost nothing, and a wrong one still teaches its sound steps. The weights are
    'weight''s; each row also carries `answer_start`, where in its target the answer sentence
    starts (tasks/answers.answer_sentence_start), which the training worker turns into a token mask.
    An output that states no answer (or only an answer) has answer_start 0: its weight scales all
    of it, as under 'weight'.
    """

    def training_rows(self, rows):
        starts = [answer_sentence_start(target) or 0 for target in rows["target"]]
        rows = rows.assign(answer_start=np.asarray(starts, dtype=np.int64))
        # A weight of 0 silences the answer only: the rationale before it is still learnt.
        return rows[(rows["weight"] > 0) | (rows["answer_start"] > 0)].reset_index(drop=True)


def trust_weights(values: pd.Series, config: "TrustConfig",
                  reference: Optional[np.ndarray] = None) -> pd.Series:
    """Per bought teacher output: its weight in the loss (0 drops it)."""
    if not choices.fact("trust.mode", config.mode, "uses_ta") or len(values) == 0:
        return pd.Series(1.0, index=values.index)
    if config.scale not in choices.names("trust.scale"):
        raise ValueError(f"trust.scale {config.scale!r} is resolved by the run's config (Config.trust_scale) "
                         "before weighting")
    placement = choices.load("trust.scale", config.scale)().place(values, config, reference)
    mode = choices.load("trust.mode", config.mode)()
    return pd.Series(mode.weights(placement, config), index=values.index)


def training_rows_for(rows: pd.DataFrame, config: "TrustConfig") -> pd.DataFrame:
    """Training rows (prompt, target, weight) as trust.mode weighs them: rows left with nothing to
    learn dropped, and under 'answer_weight' each with the `answer_start` its weight applies from."""
    return choices.load("trust.mode", config.mode)().training_rows(rows)
