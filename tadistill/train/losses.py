"""What one target token costs the student (`train.loss`), registered in the config's choice table.

A loss maps each target token's log-probability under the student to its loss; the weighted mean
over tokens and examples is modeling.weighted_lm_loss's. A new loss is one class here, its line
in config/choices.py ("train.loss") and its test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..config import TrainConfig


class TokenLoss:
    def __init__(self, config: "TrainConfig"):
        self.config = config

    def __call__(self, logprobs: torch.Tensor) -> torch.Tensor:
        """Each token's loss, from its log-probability (same shape)."""
        raise NotImplementedError


class NegativeLogLikelihood(TokenLoss):
    """-log p: the cross-entropy every causal LM is fine-tuned with."""

    def __call__(self, logprobs):
        return -logprobs


class GeneralizedCrossEntropy(TokenLoss):
    """(1 - p^q) / q (Zhang & Sabuncu 2018). Its gradient is p^q times cross-entropy's, so a token
    the student finds unlikely, as the slipped step or wrong answer of a wrong output often is,
    moves it less; q -> 0 gives -log p, q = 1 the mean absolute error 1 - p."""

    def __call__(self, logprobs):
        q = self.config.gce_q
        # -expm1(q log p) = 1 - p^q, exact for p near 1 and q near 0 where 1 - exp(.) would cancel.
        return -torch.expm1(q * logprobs) / q


def token_loss(config: "TrainConfig") -> TokenLoss:
    """The loss train.loss names."""
    from ..config import choices

    return choices.load("train.loss", config.loss)(config)
