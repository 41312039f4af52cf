"""What the signals decide: `signals.*`, `selection.*` and `trust.*`."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from .choices import described, names
from .base import _Section
from .renamed import renamed

SELECTION_STRATEGIES = names("selection.strategy")
TRUST_MODE_NAMES = names("trust.mode")
TRUST_SCALE_NAMES = ("auto",) + names("trust.scale")
TRUST_SIGNAL_NAMES = names("trust.signal")
CONSISTENCY_NAMES = names("signals.consistency")


class SignalsConfig(_Section):
    consistency: Literal[CONSISTENCY_NAMES] = Field(  # type: ignore[valid-type]
        "agreement",
        description="Self-consistency measure (signals/compute.py): " + described("signals.consistency") + ".",
    )
    w_sc: float = Field(1.0, ge=0, description="Weight of (1 - self-consistency) in the selection score.")
    w_ta: float = Field(1.0, ge=0, description="Weight of (1 - TA confidence in the student) in the selection score.")


class SelectionConfig(_Section):
    strategy: Literal[SELECTION_STRATEGIES] = Field(  # type: ignore[valid-type]
        "unsure_first", description="How each round's questions are picked (signals/selection.py): " + described("selection.strategy") + "."
    )
    candidates: Optional[int] = Field(
        None, ge=1,
        description=(
            "Each round's candidates: a seeded random sample of this many pool questions left after the warm-up, "
            "which the student samples and the TA scores (and random selection draws from); null: all of them. "
            "Bounds the cost of the signals on a large pool."
        ),
    )
    random_floor: float = Field(
        0.0, ge=0, lt=1,
        description=(
            "Share of each round's purchase bought uniformly at random among the candidates before the rule picks "
            "the rest: what no rule can starve (ALP-GMM keeps 20% random tasks). 0: the rule picks all."
        ),
    )
    sampling: Literal["top", "rank"] = Field(
        "top",
        description=(
            "How the rule's priorities pick: 'top' takes the highest; 'rank' samples without replacement in "
            "proportion to each candidate's rank (Prioritized Level Replay), so the second best is often bought too."
        ),
    )
    groups: int = Field(
        4, ge=1, le=20,
        description="selection.strategy 'progress': length groups (quantile bins of the pool's question lengths).",
    )
    evidence_z: float = Field(
        1.0, ge=0,
        description=(
            "selection.strategy 'progress': a group earns a share of the purchase only with the progress it showed "
            "beyond this many standard errors (over its paired probe answers); 'regime': a slice's value must clear "
            "this many standard errors before a round leaves random; nothing clearing it: a random purchase."
        ),
    )
    slice_share: float = Field(
        1 / 3, gt=0, le=0.5,
        description=(
            "selection.strategy 'regime': the share of what was bought each probe student leaves out (its longest, "
            "its shortest, or a random slice of that size)."
        ),
    )
    committee_size: int = Field(
        3, ge=2, le=4,
        description=(
            "selection.strategy 'committee': students trained (each in the driver's process, with the round "
            "students' settings) on bootstrap resamples of what was bought; each samples inference.num_samples "
            "answers to every candidate, so a round costs this many trainings and samplings, and no teacher money."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """selection.strategy 'signals' and the like, for a section built on its own (config/renamed.py)."""
        return renamed(data, "selection.")


class VerifierConfig(_Section):
    """How trust.signal 'verifier' fine-tunes the TA on the labelled outputs (in the driver's process)."""

    epochs: int = Field(3, ge=1, description="Passes over the labelled outputs.")
    lr: float = Field(5e-5, gt=0, description="Learning rate (AdamW); a tiny model from scratch wants more, e.g. 1e-3.")
    batch_size: int = Field(8, ge=1, description="Outputs per optimizer step.")
    max_length: int = Field(384, ge=16, description="Tokens of question and output kept per example.")


class TrustConfig(_Section):
    mode: Literal[TRUST_MODE_NAMES] = Field(  # type: ignore[valid-type]
        "weight",
        description="Use of the trust signal of the teacher's output (trust.signal; signals/trust.py): " + described("trust.mode") + ".",
    )
    signal: Literal[TRUST_SIGNAL_NAMES] = Field(  # type: ignore[valid-type]
        "ta_likelihood",
        description="What trust reads in each bought output (signals/trust_signals/): " + described("trust.signal") + ".",
    )
    scale: Literal[TRUST_SCALE_NAMES] = Field(  # type: ignore[valid-type]
        "auto",
        description=(
            "How confidence becomes trust (signals/trust.py): " + described("trust.scale") + "; 'auto': calibrated "
            "where outputs known to be right exist (the synthetic task, or trust.calibration_files), rank elsewhere."
        ),
    )
    calibration_quantile: float = Field(
        0.05, gt=0, lt=1,
        description=(
            "'calibrated': the share of right outputs the TA may distrust. 'filter' drops outputs below this "
            "quantile of the right ones' confidence; 'weight' scales them down in proportion to how far into "
            "that tail they fall."
        ),
    )
    calibration_size: int = Field(
        500, ge=10, description="'calibrated' on synthetic data: held-out gold solutions the TA scores (a seed of their own)."
    )
    calibration_files: list[str] = Field(
        default_factory=list,
        description=(
            "'calibrated' on a user's data: JSONL files of outputs known to be right, each record with 'question' and "
            "'rationale' (the TA's held-out adaptation data, say); relative paths start from data.root."
        ),
    )
    calibration_split: Optional[str] = Field(
        None,
        description=(
            "A trust signal that learns (trust.signal 'combined' or 'verifier'): the corpus split of gold-labelled questions "
            "whose teacher outputs it learns right from wrong on (bought like any other, charged to the budget, "
            "or looked up in a recorded teacher's records); never the pool or test split, never trained on."
        ),
    )
    calibration_questions: int = Field(
        100, ge=10,
        description="Questions of trust.calibration_split bought for a signal that learns (taken from budget.requests).",
    )
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    filter_quantile: float = Field(0.2, ge=0, lt=1, description="'rank' scale: quantile below which 'filter' drops outputs.")
    min_weight: float = Field(0.1, ge=0, le=1, description="Floor of a 'weight' (or an 'answer_weight') so no bought output is wasted entirely.")

