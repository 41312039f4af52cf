"""A run as a plan of steps: setup, a round template instantiated once per round, then the end.

    setup   corpus [-> teacher_records] [-> calibration.pick -> calibration.buy -> trust.learn]
            -> warmup.pick -> warmup.buy [-> calibrate_trust]
    round k roundk.train (its student, on everything bought so far) -> roundk.sample -> roundk.score
            -> roundk.select -> roundk.buy -> roundk.trust (everything bought so far, weighted)
    end     final.train (from the base student, the fair schedule) -> evaluate -> report

A one-stage method (`none`, `oracle`, `ta_teacher_only`) has no rounds: its warm-up purchase is
the whole budget (weighted by `warmup.trust` for `ta_teacher_only`). `base` is corpus ->
evaluate -> report. With `budget.rounds: 1` the plan computes what the two fixed stages of
earlier versions did (tests/test_plan.py pins it).

Each step declares the config keys it depends on and the artifacts it reads and writes. The
order is derived from those declarations (the way Kedro orders nodes by their datasets) and
checked when the plan is built: every artifact is written by one step, every read is written by
some step of the plan, and there is no cycle. A step's fingerprint hashes its config keys and the
fingerprints of the steps that wrote what it reads, so a rerun skips a finished step and a
changed option redoes only what depends on it. The runner holds each step to its declarations
(rundir.StepView), and what a run holds (its purchases, the final trust table, its students) is
read off the built plan (`Plan.written`, `Plan.final_source`), never decided a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from .artifacts import (ANSWERS, BOUGHT, CALIBRATION, FIGURES, FINAL, LABELLED, LABELLED_PURCHASE, LEARNED,
                        REJECTS, REPORT, ROWS, SUMMARY, TRUSTED, VERIFIER, WARMUP, Artifact,
                        Folder, bought, file_tag, metrics, model, model_card, offers, picks, question_signals,
                        round_name, samples, samples_scored, teacher_records, train_rows, trusted)
from .config import Config
from .config.choices import fact
from .steps.corpus import step_corpus
from .evaluate import step_evaluate
from .report import ReportInputs, step_report
from .steps.signals import judge_outputs, step_calibrate_trust, step_learn_trust, step_sample, step_score, step_select, step_trust
from .steps.teacher import earlier_purchases, step_buy, step_pick_labelled, step_pick_warmup, step_teacher_records
from .steps.train import step_train

if TYPE_CHECKING:
    from .context import RunContext

TEACHER_KEYS = ("teacher.source", "teacher.base_url", "teacher.model", "teacher.temperature",
                "teacher.max_tokens", "teacher.system_prompt", "teacher.synthetic", "teacher.recorded")
STUDENT_KEYS = ("models.student", "models.synthetic", "inference.chat_template")
TRUST_KEYS = ("trust", "models.ta", "inference", "train.final_data", "train.schedule")


@dataclass
class Step:
    name: str
    run: Callable[["RunContext"], dict]
    config_keys: tuple[str, ...] = ()
    # What the step depends on that is computed from the config rather than one of its keys
    # (the warm-up size, say), so methods that agree on it share the step's output.
    derived: Optional[Callable[[Config], Any]] = None
    reads: tuple = ()  # artifacts (artifacts.py); the steps that write them run first
    writes: tuple = ()
    # Runs in every invocation, finished or not, and is never recorded as finished (the report:
    # it tells what this invocation did); it is no work left undone before anything is paid.
    every_invocation: bool = False


class PlanError(ValueError):
    """A plan whose steps' declarations do not fit together (a bug in the plan, not in the config)."""


class Plan:
    """Steps in an order derived from what they read and write, checked on construction."""

    def __init__(self, steps: list[Step], external: tuple = ()):
        self.producer: dict[str, Step] = {}
        for step in steps:
            for artifact in step.writes:
                if str(artifact) in self.producer:
                    raise PlanError(f"{artifact} is written by both {self.producer[str(artifact)].name} and {step.name}")
                self.producer[str(artifact)] = step
        outside = {str(a) for a in external}
        for step in steps:
            for artifact in step.reads:
                if str(artifact) not in self.producer and str(artifact) not in outside:
                    raise PlanError(f"{step.name} reads {artifact}, which no step of the plan writes")
        self.steps = _ordered(steps, self.upstream)

    def upstream(self, step: Step) -> list[Step]:
        """The steps that write what `step` reads, in the order its reads are declared."""
        found: dict[str, Step] = {}
        for artifact in step.reads:
            writer = self.producer.get(str(artifact))
            if writer is not None:
                found.setdefault(writer.name, writer)
        return list(found.values())

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def names(self) -> list[str]:
        return [step.name for step in self.steps]

    def written(self, kind: str) -> list:
        """The artifacts of one kind (artifacts.KINDS) the plan's steps write, in the order they run:
        its purchases (BOUGHT), the trust tables (TRUSTED), the students it trains (MODEL)."""
        return [artifact for step in self.steps for artifact in step.writes if artifact.kind == kind]

    def final_source(self):
        """What the final student trains on (the last trust table, or the one purchase as bought):
        what the step that writes the final student reads besides the corpus and a start; None for a
        plan without one (base)."""
        for step in self.steps:
            if model(FINAL) in step.writes:
                return next(a for a in step.reads if a.kind in (TRUSTED, BOUGHT))
        return None


def _ordered(steps: list[Step], upstream: Callable[[Step], list[Step]]) -> list[Step]:
    """A topological order (Kahn's), ties kept in the order the steps were declared."""
    waiting = {step.name: {s.name for s in upstream(step)} - {step.name} for step in steps}
    order: list[Step] = []
    while waiting:
        ready = [step for step in steps if step.name in waiting and not waiting[step.name]]
        if not ready:
            raise PlanError("the steps read each other's outputs in a cycle: " + ", ".join(sorted(waiting)))
        step = ready[0]
        order.append(step)
        del waiting[step.name]
        for needs in waiting.values():
            needs.discard(step.name)
    return order


# -- the plan of a config -----------------------------------------------------------------

def plan(config: Config) -> Plan:
    """Every step of the run `config` describes, in the order its artifacts require."""
    steps = [Step("corpus", step_corpus, ("data",), writes=(ROWS, REJECTS))]
    if config.stages == 0:  # base: the student as it came, evaluated
        steps += _end(config, None)
    else:
        steps += _setup(config)
        for k in range(1, config.rounds + 1):
            steps += _round(config, k)
        steps += _end(config, _final_source(config))
    return Plan(steps + [_report_step(config, Plan(steps))])


def _recorded(config: Config) -> list[tuple[int, str]]:
    """(place among the run's teachers, model) of each teacher that answers from records."""
    return [(index, teacher.model) for index, teacher in enumerate(config.teacher_list())
            if fact("teacher.source", teacher.source, "answers_from_records")]


def _pool_reads(config: Config) -> tuple:
    """What tells which questions may be bought: the corpus, and the records recorded teachers answer from."""
    return (ROWS,) + tuple(teacher_records(name, index == 0)[0] for index, name in _recorded(config))


def _setup(config: Config) -> list[Step]:
    steps = []
    for index, teacher in _recorded(config):
        # The first teacher's step keeps the single-teacher name and keys; another's reads `teachers`.
        name, keys = (("teacher_records", ("teacher.recorded", "data.root")) if index == 0 else
                      (f"teacher_records.{file_tag(teacher)}", ("teachers", "data.root")))
        steps.append(Step(name, partial(step_teacher_records, index=index), keys, reads=(ROWS,),
                          writes=teacher_records(teacher, index == 0)))
    if config.learns_trust:  # gold-labelled outputs the trust signal learns from, paid first
        steps += [Step(f"{LABELLED_PURCHASE}.pick", step_pick_labelled, ("seed", "trust.calibration_split"),
                       derived=lambda c: c.calibration_requests(), reads=_pool_reads(config),
                       writes=(picks(LABELLED_PURCHASE),)),
                  _buy_step(config, LABELLED_PURCHASE),
                  Step("trust.learn", step_learn_trust, TRUST_KEYS, reads=(ROWS, bought(LABELLED_PURCHASE)),
                       writes=_learnt(config))]
    # The warm-up depends on its size, not on the method's name: every method that selects, with the
    # same seed and budget, buys and trains on the same warm-up (a paired comparison).
    steps.append(Step(f"{WARMUP}.pick", step_pick_warmup, ("seed",), derived=lambda c: c.warmup_requests(),
                      reads=_pool_reads(config), writes=(picks(WARMUP),)))
    if config.warmup_requests():
        steps.append(_buy_step(config, WARMUP))
    if config.calibrates_trust:
        steps.append(Step("calibrate_trust", step_calibrate_trust,
                          ("trust.calibration_size", "trust.calibration_files", "models.ta", "inference",
                           "data.synthetic", "data.root"), reads=(ROWS,), writes=(CALIBRATION,)))
    if config.one_stage_trust:  # ta_teacher_only: the TA weights the one purchase
        steps.append(_trust_step(config, WARMUP, [(0, bought(WARMUP))], None))
    return steps


def _learnt(config: Config) -> tuple:
    """What a learning trust signal's trust.learn writes and its readers read (nothing without one)."""
    if not config.learns_trust:
        return ()
    return (LABELLED, LEARNED) + ((VERIFIER,) if fact("trust.signal", config.trust.signal, "trains_model") else ())


def _buy_step(config: Config, purchase: str) -> Step:
    """A purchase from the run's teacher; with several teachers (`teachers`) the cascade's choice
    of whom to pay depends on them all and, for a cascade, on trust in what each answered."""
    # The pool's reads too: a recorded teacher answers from its records.
    keys, reads, writes = TEACHER_KEYS, _pool_reads(config) + (picks(purchase),), (bought(purchase),)
    escalates = config.cascade_trusts and purchase != LABELLED_PURCHASE
    if config.teachers:
        keys += ("teachers", "cascade")
    if escalates:
        keys += TRUST_KEYS
        reads += (CALIBRATION,) if config.calibrates_trust else ()
        reads += _learnt(config)
        writes += (offers(purchase),)
    run = partial(step_buy, purchase=purchase, judge=judge_outputs if escalates else None)
    return Step(f"{purchase}.buy", run, keys, reads=reads, writes=writes)


def _trust_step(config: Config, name: str, new: list[tuple[int, Artifact]], previous: Optional[Artifact]) -> Step:
    reads = (ROWS,) + tuple(table for _, table in new) + ((previous,) if previous else ())
    reads += (CALIBRATION,) if config.calibrates_trust else ()
    reads += _learnt(config)
    return Step(f"{name}.trust", partial(step_trust, name=name, new=new, previous=previous), TRUST_KEYS,
                reads=reads, writes=(trusted(name),))


def _round_student(config: Config, k: int) -> Optional[tuple[Artifact, Optional[Folder]]]:
    """(what round k's student trains on, what it starts from), or None when the round trains none:
    round 1's student learns the warm-up as bought, a later round's everything bought so far as
    trusted; none is trained where nothing reads it (a rule that needs no samples, unless the final
    student continues from it) or where nothing has been bought yet."""
    continues = config.train.final_init == "previous_round"
    if not (config.selection_uses_signals or config.selection_measures_progress or continues):
        return None
    source = _bought_before(config, k)
    if k == 1 or source is None:
        return (source, None) if source is not None else None
    previous = _round_student(config, k - 1)
    return source, (model(round_name(k - 1)) if continues and previous else None)


def _round(config: Config, k: int) -> list[Step]:
    name = round_name(k)
    steps = []
    student = _round_student(config, k)
    if student is not None:
        source, init = student
        steps.append(Step(f"{name}.train", partial(step_train, stage=name, source=source, init=init, final=False),
                          ("train",) + STUDENT_KEYS,
                          reads=(ROWS, source) + ((init,) if init else ()),
                          writes=(train_rows(name), model(name), metrics(name))))
    candidates = _pool_reads(config) + tuple(earlier_purchases(config, k))
    if config.selection_uses_signals:
        sampler = model(name) if student is not None else None
        steps += [
            # Without a round student the base student is sampled: then its name matters here.
            Step(f"{name}.sample", partial(step_sample, k=k, student=sampler),
                 ("inference", "seed", "selection.candidates") + (() if sampler else STUDENT_KEYS),
                 reads=candidates + ((sampler,) if sampler else ()), writes=(samples(name),)),
            Step(f"{name}.score", partial(step_score, k=k), ("inference", "models.ta"),
                 reads=(ROWS, samples(name)), writes=(samples_scored(name),)),
        ]
    measured = _measured_students(config, k) if config.selection_measures_progress else ()
    # What a regime test's probe students or a committee's members train on (each without a slice, or resampled).
    trained_on = (_bought_before(config, k)
                  if config.selection_probes_slices or config.selection_trains_committee else None)
    steps += [
        Step(f"{name}.select", partial(step_select, k=k, students=measured, trained_on=trained_on),
             ("seed", "signals", "selection", "budget")
             + (("trust.calibration_quantile",) if config.selection_needs_calibration else ())
             + (("eval",) + STUDENT_KEYS if measured else ())
             + (("eval", "train") + STUDENT_KEYS if trained_on and config.selection_probes_slices else ())
             + (("train", "inference") + STUDENT_KEYS if trained_on and config.selection_trains_committee else ()),
             reads=candidates + ((samples_scored(name),) if config.selection_uses_signals else ())
             + ((CALIBRATION,) if config.selection_needs_calibration else ())
             + tuple(student for student in measured if student is not None)
             + ((trained_on,) if trained_on and trained_on not in candidates else ()),
             writes=(question_signals(name), picks(name))),
        _buy_step(config, name),
    ]
    if k == 1:  # the first trust table takes the warm-up too, unless the final student learns the rounds' only
        warmup = [(0, bought(WARMUP))] if config.warmup_requests() and config.train.final_data == "all" else []
        steps.append(_trust_step(config, name, warmup + [(1, bought(name))], None))
    else:
        steps.append(_trust_step(config, name, [(k, bought(name))], trusted(round_name(k - 1))))
    return steps


def _bought_before(config: Config, k: int) -> Optional[Artifact]:
    """Everything bought before round k, as the round's student would learn it (the warm-up as
    bought before round 1, the last trust table after): what a regime test slices; None when
    nothing was bought yet."""
    if k == 1:
        return bought(WARMUP) if config.warmup_requests() else None
    return trusted(round_name(k - 1))


def _measured_students(config: Config, k: int) -> tuple[Optional[Folder], Optional[Folder]]:
    """(the student before round k's, round k's) that a rule measuring progress compares on the
    probe: None before is the base student; None now means round k trained no student."""
    now = model(round_name(k)) if _round_student(config, k) is not None else None
    before = model(round_name(k - 1)) if k > 1 and _round_student(config, k - 1) is not None else None
    return before, now


def _final_source(config: Config) -> Artifact:
    """What the final student trains on: the last trust table, or the one purchase as bought."""
    if config.rounds:
        return trusted(round_name(config.rounds))
    return trusted(WARMUP) if config.one_stage_trust else bought(WARMUP)


def _final_role(config: Config) -> dict:
    """What decides the final student's training besides its rows: gold weights, and the fair
    schedule's fixed steps."""
    return {"oracle": config.gold_weights, "steps": config.final_steps() if config.train.schedule == "fair" else None}


def _end(config: Config, source: Optional[Artifact]) -> list[Step]:
    if source is None:  # base: the student as it came
        return [Step("evaluate", step_evaluate, ("eval",) + STUDENT_KEYS, reads=(ROWS,), writes=(ANSWERS,))]
    init = None
    if config.rounds and config.train.final_init == "previous_round" and _round_student(config, config.rounds):
        init = model(round_name(config.rounds))
    return [
        Step(f"{FINAL}.train", partial(step_train, stage=FINAL, source=source, init=init, final=True),
             ("train",) + STUDENT_KEYS, derived=_final_role,
             reads=(ROWS, source) + ((init,) if init else ()) + ((CALIBRATION,) if config.checks_start_share else ()),
             writes=(train_rows(FINAL), model(FINAL), metrics(FINAL))),
        Step("evaluate", step_evaluate, ("eval",), reads=(ROWS, model(FINAL)), writes=(ANSWERS,)),
    ]


def _report_step(config: Config, steps: Plan) -> Step:
    """The report reads what the plan's other steps wrote that it shows: each purchase (its offers
    where a cascade made them), the rounds' signals, the final trust table, a learnt signal, each
    student's training metrics and the final student; the plan alone says which there are."""
    shown = ReportInputs.of(steps, config.selection_uses_signals)
    writes = (REPORT, SUMMARY, FIGURES) + ((model_card(shown.final_model.of),) if shown.final_model else ())
    return Step("report", partial(step_report, shown=shown), (), reads=(ROWS, ANSWERS) + shown.reads(), writes=writes,
                every_invocation=True)
