"""Trust in the teacher's outputs, registered in one place: how the TA's confidence in a bought
output becomes its weight in the loss.

Two registries, each chosen once from the config:

- a *scale* (`trust.scale`) places each confidence: a degree of trust in [0, 1] and whether the
  output passes a filter. 'calibrated' places it among the TA's confidences in outputs known to
  be right (fixed before any purchase), 'rank' among the other outputs of the same purchase;
- a *mode* (`trust.mode`) turns the placement into weights: 'none' ignores it, 'weight' scales
  each output's loss by its degree (floored at trust.min_weight), 'filter' drops what fails.

A new scale or mode is one class here, decorated with `@register_scale` / `@register_mode`, and
its test; the config's choices come from these registries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, NamedTuple, Optional

import numpy as np
import pandas as pd

from ..registry import Registry
from .selection import rank_normalise

if TYPE_CHECKING:  # the config imports these registries for its choices
    from ..config import TrustConfig


class Placement(NamedTuple):
    degree: np.ndarray  # trust in [0, 1]
    passes: np.ndarray  # bool: kept by a filter


class TrustScale:
    name: ClassVar[str]
    summary: ClassVar[str]
    needs_reference: ClassVar[bool] = False  # the TA's confidence in outputs known to be right

    def place(self, confidence: pd.Series, config: "TrustConfig", reference: Optional[np.ndarray]) -> Placement:
        raise NotImplementedError


class TrustMode:
    name: ClassVar[str]
    summary: ClassVar[str]
    uses_ta: ClassVar[bool] = True  # False: the TA never scores the teacher's outputs

    def weights(self, placement: Placement, config: "TrustConfig") -> np.ndarray:
        raise NotImplementedError


TRUST_SCALES = Registry("trust scale")
TRUST_MODES = Registry("trust mode")


def register_scale(scale: type[TrustScale]) -> type[TrustScale]:
    if scale.name == "auto":
        raise ValueError("trust scale 'auto' is reserved: the config resolves it")
    return TRUST_SCALES.register(scale)


register_mode = TRUST_MODES.register


@register_scale
class CalibratedScale(TrustScale):
    name = "calibrated"
    summary = ("against the TA's confidence in outputs known to be right: an output at least as confident as "
               "their calibration_quantile is trusted fully, so a right teacher is left alone")
    needs_reference = True

    def place(self, confidence, config, reference):
        if reference is None or len(reference) == 0:
            raise ValueError("trust.scale 'calibrated' needs the TA's confidence in outputs known to be right")
        # Share of right outputs at most this confident: the empirical CDF of the reference.
        share = np.searchsorted(np.sort(np.asarray(reference, dtype=float)), confidence.to_numpy(dtype=float),
                                side="right") / len(reference)
        q = config.calibration_quantile
        return Placement(np.minimum(1.0, share / q), share >= q)


@register_scale
class RankScale(TrustScale):
    name = "rank"
    summary = "rank within the purchase (always down-weights part of it, even when every output is right)"

    def place(self, confidence, config, reference):
        ranks = rank_normalise(confidence).to_numpy(dtype=float)
        return Placement(ranks, ranks >= config.filter_quantile)


@register_mode
class NoTrust(TrustMode):
    name = "none"
    summary = "every bought output counts fully (the TA's confidence in the teacher is not used)"
    uses_ta = False

    def weights(self, placement, config):
        return np.ones(len(placement.degree))


@register_mode
class WeightByTrust(TrustMode):
    name = "weight"
    summary = "each output's loss scaled by its trust, floored at trust.min_weight"

    def weights(self, placement, config):
        return config.min_weight + (1 - config.min_weight) * placement.degree


@register_mode
class FilterByTrust(TrustMode):
    name = "filter"
    summary = "outputs the TA distrusts dropped"

    def weights(self, placement, config):
        return placement.passes.astype(float)


def trust_weights(ta_conf_teacher: pd.Series, config: "TrustConfig",
                  reference: Optional[np.ndarray] = None) -> pd.Series:
    """Per bought teacher output: its weight in the loss (0 drops it)."""
    mode = TRUST_MODES[config.mode]()
    if not mode.uses_ta or len(ta_conf_teacher) == 0:
        return pd.Series(1.0, index=ta_conf_teacher.index)
    if config.scale not in TRUST_SCALES:
        raise ValueError(f"trust.scale {config.scale!r} is resolved by the run's config (Config.trust_scale) "
                         "before weighting")
    placement = TRUST_SCALES[config.scale]().place(ta_conf_teacher, config, reference)
    return pd.Series(mode.weights(placement, config), index=ta_conf_teacher.index)
