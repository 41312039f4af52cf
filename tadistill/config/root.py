"""The whole tree, `Config`: its sections, the method preset, and what follows from the
choices made (how many stages and rounds, whether trust is calibrated)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from ..methods import METHODS as _METHOD_REGISTRY, describe as _describe_methods
from .choices import fact
from .base import SYNTHETIC, _Section, _copy_tree, _get_dotted, _has_dotted, _set_dotted
from .data import DataConfig, RayConfig
from .models import InferenceConfig, ModelsConfig
from .renamed import renamed
from .signals import SelectionConfig, SignalsConfig, TrustConfig
from .teacher import BudgetConfig, CascadeConfig, TeacherConfig
from .train import EvalConfig, TrainConfig

METHODS = tuple(_METHOD_REGISTRY)


class Config(_Section):
    run_dir: str = Field("runs/default", description="Directory of the run's artifacts and manifest.")
    method: Literal[METHODS] = Field(  # type: ignore[valid-type]
        "full", description="Preset of the method (tadistill/methods.py): " + _describe_methods() + ".",
    )
    seed: int = Field(0, description="Seed of the random warm-up pick and baselines.")
    ray: RayConfig = Field(default_factory=RayConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    teachers: list[TeacherConfig] = Field(
        default_factory=list,
        description=(
            "Several teachers, cheapest first, each a teacher section of its own (source, model, endpoint, limits; "
            "its price in budget.prices): one budget covers them all and cascade.policy picks whom each question "
            "is bought from. Empty: the one teacher of `teacher` (set one or the other)."
        ),
    )
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _method_preset(cls, data: Any) -> Any:
        """What `method` means, filled in wherever a config is built (Config(...), load_config,
        model_validate): keys the user set explicitly still win. Old names (config/renamed.py) are
        read as the new ones first, so they meet the preset as the new ones would."""
        if not isinstance(data, dict):
            return data
        data = renamed(data)
        method = data.get("method", "full")
        preset = METHOD_PRESETS.get(method, {}) if isinstance(method, str) else {}
        if not preset:
            return data
        tree = dict(data)
        for key, value in preset.items():
            section = key.split(".")[0]
            if isinstance(tree.get(section), BaseModel):  # a section given as an object: its explicit fields
                tree[section] = tree[section].model_dump(exclude_unset=True)
            elif isinstance(tree.get(section), dict):
                tree[section] = _copy_tree(tree[section])
            if not _has_dotted(tree, key):
                _set_dotted(tree, key, value)
            elif not _same(_get_dotted(tree, key), value):
                raise ValueError(_contradiction(method, key, _get_dotted(tree, key), preset))
        return tree

    @model_validator(mode="before")
    @classmethod
    def _teacher_is_the_first_of_teachers(cls, data: Any) -> Any:
        """With `teachers:`, `teacher` is their first (what every single-teacher key reads)."""
        if not isinstance(data, dict) or not isinstance(data.get("teachers"), list) or not data["teachers"]:
            return data  # (a teachers that is no list is the field's own error)
        first = data["teachers"][0]
        if data.get("teacher") and not _same_teacher(data["teacher"], first):  # a saved config has both, equal
            raise ValueError("both teacher and teachers are set: give several teachers as teachers (cheapest first), "
                             "or one as teacher")
        return {**data, "teacher": first.model_dump(exclude_unset=True) if isinstance(first, BaseModel) else first}

    @model_validator(mode="after")
    def _teachers_fit_together(self):
        if not self.teachers:
            if self.cascade.policy != "fixed" or self.cascade.teacher not in (None, self.teacher.model):
                raise ValueError("cascade.* chooses among several teachers: list them under teachers")
            return self
        models = [t.model for t in self.teachers]
        if len(set(models)) < len(models):
            raise ValueError(f"teachers: each needs a model name of its own (the cache, ledger and report key); "
                             f"got {models}")
        if self.cascade.teacher is not None and self.cascade.teacher not in models:
            raise ValueError(f"cascade.teacher {self.cascade.teacher!r} is none of the teachers' models: {models}")
        if self.cascade_trusts and self.trust_scale != "calibrated":
            raise ValueError(f"cascade.policy 'cascade' escalates where trust.signal {self.trust.signal!r} is below its "
                             "calibrated level, fixed before any purchase: it needs trust.scale 'calibrated' (outputs "
                             "known to be right: the synthetic task's, trust.calibration_files, or a signal that "
                             "learns) and a signal that can be calibrated")
        if self.cascade.policy == "cascade" and len(self.teachers) < 2:
            raise ValueError("cascade.policy 'cascade' needs at least two teachers (cheapest first)")
        return self

    @model_validator(mode="after")
    def _cost_needs_a_price(self):
        for teacher in self.teachers or [self.teacher]:
            if (self.budget.cost is not None and fact("teacher.source", teacher.source, "charges_money")
                    and teacher.model not in self.budget.prices):
                raise ValueError(f"budget.cost is set but budget.prices has no price for teacher.model {teacher.model!r}")
        if self.teachers and self.budget.cost is not None:
            unpriced = [t.model for t in self.teachers if t.model not in self.budget.prices]
            if unpriced:
                raise ValueError(f"budget.cost is set but budget.prices has no price for teacher.model "
                                 f"{', '.join(repr(m) for m in unpriced)}: one money budget covers every teacher")
        return self

    @field_validator("run_dir")
    @classmethod
    def _run_dir_is_a_filesystem_path(cls, value: str) -> str:
        # The teacher's response log is appended to and fsynced before a response is used, and
        # artifacts are renamed into place: object stores have neither appends nor renames.
        if "://" in value:
            raise ValueError(
                f"{value!r} is a URI: the run directory must be a filesystem path, on a cluster one every "
                "node mounts (NFS: EFS, Filestore, a ReadWriteMany volume); checkpoints may go to s3:// or gs:// "
                "with train.storage_path"
            )
        return value

    @model_validator(mode="after")
    def _no_warmup_means_no_round_student_to_start_from(self):
        if self.selects and self.budget.warmup_share == 0 and self.train.final_init == "previous_round":
            raise ValueError("budget.warmup_share 0 trains no student before the first round's purchase: set "
                             "train.final_init to 'base'")
        return self

    @model_validator(mode="after")
    def _trust_signal_fits(self):
        signal = self.trust.signal
        if not self.trusts_teacher:
            return self
        if self.trust.scale != "auto" and fact("trust.scale", self.trust.scale, "needs_reference") \
                and not fact("trust.signal", signal, "calibrates"):
            raise ValueError(f"trust.signal {signal!r} cannot be computed on outputs known to be right, so "
                             f"trust.scale {self.trust.scale!r} cannot place it: set trust.scale 'rank' (or 'auto')")
        if fact("trust.signal", signal, "several_outputs") and self.teacher.n < 2 \
                and not fact("teacher.source", self.teacher.source, "answers_from_records"):
            raise ValueError(f"trust.signal {signal!r} compares a question's several teacher rationales: set "
                             "teacher.n to 2 or more (each request returns that many, all charged)")
        return self

    @model_validator(mode="after")
    def _learning_signal_has_labels(self):
        if not self.learns_trust:
            return self
        split = self.trust.calibration_split
        if split is None:
            raise ValueError(f"trust.signal {self.trust.signal!r} learns right from wrong on gold-labelled teacher "
                             "outputs: set trust.calibration_split to a corpus split of questions with gold answers")
        for key in ("pool_split", "test_split"):
            if split == getattr(self.data, key):
                raise ValueError(f"trust.calibration_split {split!r} is data.{key}: the calibration questions must be "
                                 "a split of their own (its outputs are labelled by gold and never trained on)")
        if self.trust.calibration_questions >= self.budget.requests:
            raise ValueError(f"trust.calibration_questions {self.trust.calibration_questions} leaves nothing of "
                             f"budget.requests {self.budget.requests} to buy the pool with")
        return self

    @model_validator(mode="after")
    def _calibration_has_references(self):
        needs_reference = self.trust.scale != "auto" and fact("trust.scale", self.trust.scale, "needs_reference")
        if self.trusts_teacher and needs_reference and not self._has_calibration_references \
                and not self.learns_trust:
            raise ValueError(
                f"trust.scale {self.trust.scale!r} needs outputs known to be right: set trust.calibration_files "
                "(JSONL with question and rationale), or trust.scale 'rank'"
            )
        if self.checks_start_share and not self._has_calibration_references:
            setting = ("train.final_pick 'best_on_probe'" if self.picks_final_on_probe
                       else "train.start_weight_share 'auto'")
            raise ValueError(f"{setting} checks the final student on outputs known to be right: set "
                             "trust.calibration_files (JSONL with question and rationale), or train.final_pick "
                             "'last' with a number for train.start_weight_share")
        if self.selection_needs_calibration and not self._has_calibration_references:
            raise ValueError(
                f"selection.strategy {self.selection.strategy!r} reads the student's samples against outputs known "
                "to be right: set trust.calibration_files (JSONL with question and rationale), or another "
                "selection.strategy"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_the_final_weights(self):
        if self.train.final_pick == "best_on_probe" and self.train.start_weight_share != 0:  # 'auto' gives way
            raise ValueError(f"train.final_pick 'best_on_probe' picks the share of the start's weights itself (0, "
                             f"0.25, 0.5, 0.75 or the start alone): drop train.start_weight_share "
                             f"{self.train.start_weight_share!r}, or set train.final_pick 'last'")
        return self

    @model_validator(mode="after")
    def _rounds_need_a_selecting_method(self):
        if self.budget.rounds > 1 and not self.selects:
            raise ValueError(f"budget.rounds {self.budget.rounds}: method {self.method!r} buys once, at random, and "
                             "has no rounds; rounds need a method that selects (full, random, <selection>_<trust>)")
        return self

    @model_validator(mode="after")
    def _fair_schedule_starts_from_base(self):
        if self.train.schedule == "fair" and (self.train.final_init != "base" or self.train.final_data != "all"):
            raise ValueError(
                "train.schedule 'fair' trains the final student from the base model on every bought output "
                "(train.final_init 'base', train.final_data 'all'); to continue from the previous round's student "
                "set train.schedule 'epochs'"
            )
        return self

    def calibration_requests(self) -> int:
        """Requests of the calibration purchase (gold-labelled questions a learning trust signal
        learns from), bought first: trust.calibration_questions, or 0 without such a signal."""
        return self.trust.calibration_questions if self.learns_trust else 0

    def pool_requests(self) -> int:
        """What the budget leaves for the pool once the calibration purchase is paid."""
        return self.budget.requests - self.calibration_requests()

    def warmup_requests(self) -> int:
        """Requests of the random purchase: the warm-up share of a method that selects (at least one
        when the share is above 0), the whole budget of a one-stage method."""
        if not self.selects:
            return self.pool_requests()
        if self.budget.warmup_share == 0:
            return 0
        return max(1, round(self.pool_requests() * self.budget.warmup_share))

    def round_targets(self) -> list[int]:
        """Requests bought by the end of each round, warm-up excluded: the budget left after the
        warm-up, split by budget.round_shares (the last round ends on all of it)."""
        left = self.pool_requests() - self.warmup_requests()
        shares, done, targets = self.budget.shares(), 0.0, []
        for share in shares[:-1]:
            done += share
            targets.append(round(left * done))
        return targets + [left] if self.rounds else []

    def final_steps(self) -> int:
        """Optimizer steps of the final student's training under the fair schedule: train.steps,
        or train.epochs passes over a purchase of the whole budget, whatever was bought or dropped."""
        if self.train.steps:
            return self.train.steps
        return math.ceil(self.train.epochs * self.budget.requests / self.train.global_batch_size)

    @property
    def _has_calibration_references(self) -> bool:
        return self.data.source == SYNTHETIC or bool(self.trust.calibration_files)

    @property
    def trust_scale(self) -> str:
        """trust.scale with 'auto' resolved: calibrated where outputs known to be right exist."""
        if self.trust.scale != "auto":
            return self.trust.scale
        calibrates = fact("trust.signal", self.trust.signal, "calibrates")
        has_references = self._has_calibration_references or fact("trust.signal", self.trust.signal, "learns")
        return "calibrated" if has_references and calibrates else "rank"

    @property
    def calibrates_trust(self) -> bool:
        """Whether the run scores outputs known to be right: to put trust on an absolute scale, or
        for a selection rule that reads the student's samples on that scale (a signal that learns
        places itself on its labelled outputs' right ones instead)."""
        return ((self.trusts_teacher or self.cascade_trusts) and fact("trust.scale", self.trust_scale, "needs_reference")
                and not self.learns_trust) or self.selection_needs_calibration or self.checks_start_share

    @property
    def cascade_trusts(self) -> bool:
        """Whether purchases escalate on trust in the cheaper teacher's outputs (cascade.policy 'cascade')."""
        return fact("cascade.policy", self.cascade.policy, "uses_trust")

    def teacher_list(self) -> list[TeacherConfig]:
        """The teachers a run may buy from, cheapest first (`teacher` alone when `teachers` is empty)."""
        return list(self.teachers) or [self.teacher]

    @property
    def learns_trust(self) -> bool:
        """Whether the trust signal learns from gold-labelled teacher outputs (a calibration purchase)."""
        return (self.trusts_teacher or self.cascade_trusts) and fact("trust.signal", self.trust.signal, "learns")

    @property
    def checks_start_share(self) -> bool:
        """Whether the final student's averaging share (and, with train.final_pick 'best_on_probe', its
        checkpoint, or the start itself) is read from the run's outputs known to be right."""
        picks = self.train.start_weight_share == "auto" or self.picks_final_on_probe
        return picks and self.stages > 0

    @property
    def picks_final_on_probe(self) -> bool:
        """train.final_pick resolved: 'best_on_probe' as set, or 'auto' where the run has a labelled probe
        and no fixed averaging share (a run without one keeps its last weights, and its report says so)."""
        if self.train.final_pick == "auto":
            return self._has_calibration_references and self.train.start_weight_share == 0 and self.stages > 0
        return self.train.final_pick == "best_on_probe"

    @property
    def selection_needs_calibration(self) -> bool:
        """Whether selection.strategy reads the TA's confidence in samples against the calibration."""
        return self.selects and fact("selection.strategy", self.selection.strategy, "needs_reference")

    @property
    def selection_measures_progress(self) -> bool:
        """Whether selection.strategy measures each round's student on the labelled probe (a round
        student is then trained even though no sample is drawn)."""
        return self.selects and fact("selection.strategy", self.selection.strategy, "measures_progress")

    @property
    def selection_probes_slices(self) -> bool:
        """Whether selection.strategy trains probe students on what was bought minus slices of it
        (signals/regime.py) before each round's purchase."""
        return self.selects and fact("selection.strategy", self.selection.strategy, "probes_slices")

    @property
    def selection_trains_committee(self) -> bool:
        """Whether selection.strategy trains a committee on resamples of what was bought (signals/committee.py)
        before each round's purchase."""
        return self.selects and fact("selection.strategy", self.selection.strategy, "trains_committee")

    @property
    def selection_uses_signals(self) -> bool:
        """Whether selection.strategy needs the student's samples and the TA's scores of them."""
        return fact("selection.strategy", self.selection.strategy, "uses_signals")

    @property
    def trust_uses_ta(self) -> bool:
        """Whether trust.mode reads a trust signal of the teacher's outputs (the TA's, by default)."""
        return fact("trust.mode", self.trust.mode, "uses_ta")

    @property
    def trust_signal_uses_ta(self) -> bool:
        """Whether the trust signal has the TA score the teacher's outputs."""
        return self.trust_uses_ta and fact("trust.signal", self.trust.signal, "uses_ta")

    @property
    def stages(self) -> int:
        """0: the base student as it is; 1: one purchase; 2: warm-up, then a selected purchase."""
        return _METHOD_REGISTRY[self.method].stages

    @property
    def rounds(self) -> int:
        """Rounds of select / buy / train after the warm-up: budget.rounds for a method that selects, else 0."""
        return self.budget.rounds if self.selects else 0

    @property
    def selects(self) -> bool:
        """Whether rounds of selected purchases follow the warm-up (every method but the one-purchase
        baselines)."""
        return self.stages == 2

    @property
    def gold_weights(self) -> bool:
        """Whether gold, not the TA, weights the bought outputs (oracle)."""
        return _METHOD_REGISTRY[self.method].gold_weights

    @property
    def trusts_teacher(self) -> bool:
        """Whether TA confidence in the teacher's outputs weights the (last) training stage."""
        return self.trust_uses_ta and not self.gold_weights

    @property
    def one_stage_trust(self) -> bool:
        """A one-stage method whose single purchase the TA weights (ta_teacher_only)."""
        return self.stages == 1 and self.trusts_teacher

    def section_hash(self, *dotted_keys: str) -> str:
        """Stable hash of the named parts of the config (what a step depends on)."""
        dump = self.model_dump(mode="json")
        picked = {key: _get_dotted(dump, key) for key in dotted_keys}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


METHOD_PRESETS: dict[str, dict[str, Any]] = {name: m.preset for name, m in _METHOD_REGISTRY.items()}


def _same_teacher(one: Any, other: Any) -> bool:
    try:
        as_config = lambda t: t if isinstance(t, TeacherConfig) else TeacherConfig.model_validate(t)  # noqa: E731
        return as_config(one) == as_config(other)
    except ValueError:
        return False


def _same(given: Any, preset: Any) -> bool:
    """A user's value equals the preset's (1 and 1.0 are the same weight)."""
    if isinstance(preset, (int, float)) and isinstance(given, (int, float)) and not isinstance(given, bool):
        return float(given) == float(preset)
    return given == preset


def _contradiction(method: str, key: str, given: Any, preset: dict[str, Any]) -> str:
    """One line: what the method sets, what the config says, and the method that has that setting.
    A method means what it says: `none` with TA trust weighting is not plain fine-tuning."""
    wanted = {**preset, key: given}
    # A method that sets this key as the config does and agrees with everything else it sets.
    # Of the same kind (stages, gold weights): `full` without trust is `both_none`, not `base`.
    kind = (_METHOD_REGISTRY[method].stages, _METHOD_REGISTRY[method].gold_weights)
    matches = sorted((name for name, other in METHOD_PRESETS.items()
                      if name != method and key in other
                      and (_METHOD_REGISTRY[name].stages, _METHOD_REGISTRY[name].gold_weights) == kind
                      and all(k in wanted and _same(wanted[k], v) for k, v in other.items())),
                     key=lambda name: -len(METHOD_PRESETS[name]))
    instead = (f"method {matches[0]!r} is {method!r} with {key} {given!r}" if matches
               else f"no method has {key} {given!r} with the rest of {method!r}'s settings")
    return (f"method {method!r} sets {key} {preset[key]!r} but the config sets it to {given!r}: {instead}; "
            f"drop {key} from the config (the method sets it) or choose that method")

