"""The two-stage run as a list of steps over the run directory.

corpus -> warm-up pick -> teacher (stage 1) -> train stage 1 -> student samples -> TA
scores -> selection -> teacher (stage 2) -> TA trust in the teacher -> train stage 2 ->
evaluate -> report.  The `none` baseline is corpus -> random pick of the whole budget ->
teacher -> train -> evaluate -> report, from the same code.

Each step declares the config keys and the earlier steps it depends on; its fingerprint
hashes both, so a rerun skips a finished step and a changed option redoes only what
depends on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from . import __version__
from . import artifacts as A
from .config import SYNTHETIC, Config
from .rundir import STORAGE_ERRNOS, RunDir, storage_problem
from .services import Services

log = logging.getLogger(__name__)
LOG_ONLY = {"console": False}  # a record for the run's log, not the console

TEACHER_STEPS = ("teacher_stage1", "teacher_stage2")  # the steps that pay the teacher


@dataclass
class Step:
    name: str
    run: Callable[["RunContext"], dict]
    config_keys: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    # What the step depends on that is computed from the config rather than one of its keys
    # (the warm-up size, say), so methods that agree on it share the step's output.
    derived: Optional[Callable[[Config], Any]] = None
    # The artifacts (artifacts.py) it reads and writes: a finished step whose outputs are gone
    # runs again, and a test checks that every artifact read is written by an earlier step.
    reads: tuple = ()
    writes: tuple = ()


@dataclass
class RunContext:
    config: Config
    run_dir: RunDir
    services: Services
    fingerprints: dict[str, str] = field(default_factory=dict)
    teacher_sent: int = 0  # requests actually paid in this invocation
    step_log: list[dict] = field(default_factory=list)
    _models: Optional[dict[str, str]] = None
    _budget: object = None
    _teacher: object = None
    _executor: object = None
    _tracker: object = None

    def models(self) -> dict[str, str]:
        """Resolved student and TA paths (the synthetic ones are built once, then cached)."""
        if self._models is None:
            paths = {"student": self.config.models.student, "ta": self.config.models.ta}
            if SYNTHETIC in paths.values():
                from .synthetic.models import ensure_synthetic_models

                built = ensure_synthetic_models(self.config.models.cache_dir, self.config.models.synthetic)
                paths = {k: (built[k] if v == SYNTHETIC else v) for k, v in paths.items()}
            self._models = paths
        return self._models

    @property
    def teacher(self):
        """The run's teacher (teacher/sources.py), built once from teacher.source."""
        if self._teacher is None:
            from .teacher.sources import teacher_for

            self._teacher = teacher_for(self.config, self.services, self.run_dir)
        return self._teacher

    def budget(self):
        """The run's budget, made once by the teacher, already charged with what finished
        teacher steps used and with requests a crashed invocation left in flight."""
        if self._budget is None:
            from .teacher.budget import Spend

            spent = Spend()
            for name in TEACHER_STEPS:
                done = self.run_dir.finished(name, self.fingerprints.get(name, ""))
                if done:
                    spent = spent + Spend(done["rows"], done.get("prompt_tokens", 0) + done.get("completion_tokens", 0),
                                          done.get("cost", 0.0))
            self._budget = self.teacher.make_budget(spent + self.teacher.orphan_spend())
        return self._budget

    @property
    def executor(self):
        """Where the models answer (inference/executor.py), built once from inference.launcher."""
        if self._executor is None:
            from .inference.executor import executor_for

            self._executor = executor_for(self.config.inference, self.services, self.config.data.answer_fallback,
                                          self.config.data.num_blocks)
        return self._executor

    @property
    def tracker(self):
        """The run's experiment-tracker runs (tracking.py), opened when first written to."""
        if self._tracker is None:
            from .tracking import RunTracker

            self._tracker = RunTracker(self.config, self.run_dir.path)
        return self._tracker

    def close(self) -> None:
        """Take down what the run deployed (the executor's apps, the simulated teacher) and close
        the tracker runs."""
        if self._tracker is not None:
            self._tracker.close()
        if self._executor is not None:
            self._executor.close()
        if self._teacher is not None:
            self._teacher.close()


# -- the steps ---------------------------------------------------------------------------

def step_corpus(ctx: RunContext) -> dict:
    from .corpus import read_corpus, write_synthetic_source

    ctx.services.ray()
    data = ctx.config.data
    if data.source == SYNTHETIC:
        data = write_synthetic_source(data, ctx.run_dir.path / "corpus" / "source")
    corpus = read_corpus(data)
    ctx.run_dir.write_table(A.ROWS, corpus.rows)
    ctx.run_dir.write_table(A.REJECTS, corpus.rejects)
    rejects_path = str(ctx.run_dir.path / A.REJECTS)
    for split, count in corpus.counts.items():
        log.info("corpus: split %-10s %6d rows in, %6d kept, %5d rejected", split, count["rows_in"], count["kept"],
                 count["rejected"], extra=None if count["rejected"] else LOG_ONLY)
    if len(corpus.rejects):
        log.warning("corpus: %d row(s) rejected; see %s", len(corpus.rejects), rejects_path)
    corpus.check_reject_share(data.max_reject_share, rejects_path)
    return {"rows": len(corpus.rows), "rejected": len(corpus.rejects), "splits": corpus.counts}


def step_teacher_records(ctx: RunContext) -> dict:
    """Import the recorded teacher outputs and match them to corpus rows (no budget spent here)."""
    from .teacher.recorded import import_records

    rows = ctx.run_dir.read_table(A.ROWS)
    records, unmatched = import_records(ctx.config.teacher.recorded, ctx.config.data.root, rows,
                                        ctx.config.data.max_row_bytes)
    ctx.run_dir.write_table(A.RECORDS, records)
    ctx.run_dir.write_table(A.UNMATCHED, unmatched)
    pool = rows[rows["split"] == ctx.config.data.pool_split]
    without = int((~pool["id"].isin(set(records["id"]))).sum())
    if len(unmatched):
        log.warning("recorded teacher: %d output(s) match no corpus row; see %s", len(unmatched),
                    ctx.run_dir.path / A.UNMATCHED)
    if without:
        log.warning("recorded teacher: %d of %d pool questions have no recorded output and cannot be bought",
                    without, len(pool))
    return {"rows": len(records), "questions": int(records["id"].nunique()), "unmatched": len(unmatched),
            "pool_without_record": without}


def pool_rows(ctx: RunContext) -> pd.DataFrame:
    """Questions the method may buy: the pool split, less those a recorded teacher cannot answer."""
    rows = ctx.run_dir.read_table(A.ROWS)
    pool = ctx.teacher.buyable(rows[rows["split"] == ctx.config.data.pool_split])
    return pool.sort_values("id").reset_index(drop=True)


def warmup_count(config: Config) -> int:
    if not config.two_stage:
        return config.budget.requests
    if config.budget.warmup_share == 0:
        return 0
    return max(1, round(config.budget.requests * config.budget.warmup_share))


def has_warmup(config: Config) -> bool:
    return warmup_count(config) > 0


def step_warmup_pick(ctx: RunContext) -> dict:
    pool = pool_rows(ctx)
    count = min(warmup_count(ctx.config), len(pool))
    picked = pool.sample(n=count, random_state=ctx.config.seed)[["id", "question"]]
    ctx.run_dir.write_table(A.PICKS_STAGE1, picked)
    return {"rows": len(picked)}


def _buy(ctx: RunContext, picks_artifact: A.Artifact, out: A.Artifact, out_name: str) -> dict:
    from .tasks.answers import add_answers
    from .tasks.prompts import system_prompt

    picks = ctx.run_dir.read_table(picks_artifact)

    rows = ctx.run_dir.read_table(A.ROWS)
    # One task, one answer type: every corpus row carries it.
    prompt = system_prompt(ctx.config.teacher.system_prompt, rows["answer_type"].iloc[0])
    bought, report = ctx.teacher.buy(picks, prompt, ctx.budget(), desc=out_name)
    bought = add_answers(bought, rows, ctx.config.data.answer_fallback)
    ctx.run_dir.write_table(out, bought)
    ctx.teacher_sent += report.sent
    log.info("%s: bought %d (sent %d, cache hits %d, truncated %d)", out_name, report.bought, report.sent,
             report.cache_hits, report.truncated, extra=LOG_ONLY)
    return {
        "rows": report.bought, "outputs": len(bought), "sent": report.sent, "cache_hits": report.cache_hits,
        "not_bought_budget": report.not_bought_budget, "unextractable_answers": int(bought["answer"].isna().sum()),
        "truncated": report.truncated, "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens, "cost": round(report.cost, 6),
    }


def step_teacher_stage1(ctx: RunContext) -> dict:
    return _buy(ctx, A.PICKS_STAGE1, A.TEACHER_STAGE1, "teacher_stage1")


def _training_rows(ctx: RunContext, teacher: pd.DataFrame, weights: Optional[pd.Series] = None) -> pd.DataFrame:
    from .tasks.prompts import student_prompt, student_target

    questions = ctx.run_dir.read_table(A.ROWS).set_index("id")["question"]
    rows = pd.DataFrame({
        "id": teacher["id"],
        "prompt": [student_prompt(questions[i]) for i in teacher["id"]],
        "target": [student_target(t) for t in teacher["text"]],
        "weight": 1.0 if weights is None else weights.to_numpy(),
    })
    return rows[rows["weight"] > 0].reset_index(drop=True)


def _train(ctx: RunContext, stage: str, rows: pd.DataFrame, init_model: str, final: bool) -> dict:
    """Train one stage. The final student, under the fair schedule, takes the same optimizer
    steps whatever the method bought or dropped (Config.final_steps)."""
    from .train.ray_trainer import train_stage

    ctx.services.ray()
    train = ctx.config.train
    fixed = final and train.schedule == "fair"
    train = train.model_copy(update={"steps": ctx.config.final_steps() if fixed else None})
    metrics = train_stage(
        rows, init_model, train,
        storage_path=train.storage_path or str(ctx.run_dir.path / "ray_train"), name=stage,
        model_out=ctx.run_dir.file(A.model(stage)), chat_template=ctx.config.inference.chat_template,
    )
    ctx.tracker.stage_curve(stage, metrics["step_losses"], metrics["step_lrs"])
    ctx.run_dir.write_table(A.train_rows(stage), rows)
    metrics["optimizer_steps"] = metrics["steps"]
    metrics["examples_seen"] = metrics["steps"] * train.global_batch_size
    (ctx.run_dir.path / stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return {k: v for k, v in metrics.items() if k not in ("step_losses", "step_lrs")}


def step_train_stage1(ctx: RunContext) -> dict:
    """The warm-up; for a one-stage method the whole training, weighted by gold (oracle) or
    by the TA's trust in each output (ta_teacher_only)."""
    if ctx.config.gold_weights:
        teacher = ctx.run_dir.read_table(A.TEACHER_STAGE1)
        weights = _gold_weights(ctx, teacher)
    elif ctx.config.one_stage_trust:
        teacher = ctx.run_dir.read_table(A.TEACHER_WEIGHTED)
        weights = teacher["weight"]
    else:
        teacher, weights = ctx.run_dir.read_table(A.TEACHER_STAGE1), None
    return _train(ctx, "stage1", _training_rows(ctx, teacher, weights), ctx.models()["student"],
                  final=not ctx.config.two_stage)


def _gold_weights(ctx: RunContext, teacher: pd.DataFrame) -> pd.Series:
    """The oracle baseline: weight 1 where the teacher's answer matches gold, 0 elsewhere."""
    gold = ctx.run_dir.read_table(A.ROWS).set_index("id")["gold"]
    missing = teacher["id"].map(gold).isna()
    if missing.any():
        raise ValueError(f"method 'oracle' needs gold answers in the pool split; {int(missing.sum())} bought "
                         f"questions have none (e.g. id {teacher.loc[missing, 'id'].iloc[0]!r})")
    right = teacher["answer"].notna() & (teacher["answer"] == teacher["id"].map(gold))
    return right.astype(float)


def _stage1_bought(ctx: RunContext) -> pd.DataFrame:
    """The warm-up purchase; empty when the method has no warm-up."""
    if not has_warmup(ctx.config):
        return ctx.run_dir.read_table(A.PICKS_STAGE1).iloc[0:0].assign(k=0, text="", answer=None)
    return ctx.run_dir.read_table(A.TEACHER_STAGE1)


def _stage1_model(ctx: RunContext) -> str:
    """The model whose signals steer stage 2: the warmed-up student, or the base one without a warm-up."""
    return str(ctx.run_dir.path / A.MODEL_STAGE1) if has_warmup(ctx.config) else ctx.models()["student"]


def _remaining_pool(ctx: RunContext) -> pd.DataFrame:
    """The stage-2 candidates: pool questions not bought in the warm-up, or a seeded random
    sample of selection.candidates of them (signals cost a sampling and a scoring per candidate)."""
    pool = pool_rows(ctx)
    bought = set(_stage1_bought(ctx)["id"])
    remaining = pool[~pool["id"].isin(bought)].reset_index(drop=True)
    limit = ctx.config.selection.candidates
    if limit and limit < len(remaining):
        remaining = remaining.sample(n=limit, random_state=ctx.config.seed).sort_values("id").reset_index(drop=True)
    return remaining


def step_sample(ctx: RunContext) -> dict:
    samples = ctx.executor.sample(_stage1_model(ctx), _remaining_pool(ctx), _parts(ctx, A.SAMPLES_PARTS, "sample"))
    ctx.run_dir.write_table(A.SAMPLES, samples)
    return {"rows": len(samples), "questions": int(samples["id"].nunique()),
            "unextractable": int(samples["answer"].isna().sum())}


def _parts(ctx: RunContext, folder: A.Folder, step: str):
    """Where a step writes its output block by block, and the fingerprint the blocks belong to."""
    return ctx.run_dir.path / folder, ctx.fingerprints[step]


def _score(ctx: RunContext, rows: pd.DataFrame, parts) -> pd.DataFrame:
    return ctx.executor.score(ctx.models()["ta"], rows, parts)


def step_score_samples(ctx: RunContext) -> dict:
    samples = ctx.run_dir.read_table(A.SAMPLES)
    questions = _remaining_pool(ctx)[["id", "question"]]
    scored = _score(ctx, samples.merge(questions, on="id"), _parts(ctx, A.SCORED_PARTS, "score_samples"))
    scored = scored.drop(columns=["question"]).sort_values(["id", "k"]).reset_index(drop=True)
    ctx.run_dir.write_table(A.SAMPLES_SCORED, scored)
    return {"rows": len(scored), "mean_ta_conf": float(scored["ta_conf"].mean())}


def step_select(ctx: RunContext) -> dict:
    from .signals.compute import question_signals
    from .signals.selection import select

    config = ctx.config
    pool = _remaining_pool(ctx)
    count = min(config.budget.requests - warmup_count(config), len(pool))
    if config.selection_rule.uses_signals:
        signals = question_signals(ctx.run_dir.read_table(A.SAMPLES_SCORED), config.signals)
    else:
        signals = pd.DataFrame({"id": pool["id"], "self_consistency": np.nan, "ta_conf_student": np.nan})
    chosen = select(signals, count, config.selection.strategy, config.signals, config.seed)
    ctx.run_dir.write_table(A.QUESTION_SIGNALS, chosen)
    picks = chosen[chosen["selected"]].sort_values(["score", "id"], ascending=[False, True])
    picks = picks[["id"]].merge(pool[["id", "question"]], on="id", how="left")
    ctx.run_dir.write_table(A.PICKS_STAGE2, picks)
    return {"rows": len(picks), "candidates": len(chosen)}


def step_teacher_stage2(ctx: RunContext) -> dict:
    return _buy(ctx, A.PICKS_STAGE2, A.TEACHER_STAGE2, "teacher_stage2")


def _bought_for_last_stage(ctx: RunContext) -> pd.DataFrame:
    """Teacher outputs the last stage trains on: a one-stage method's purchase; in stage 2,
    every purchase ('all') or the stage-2 ones only."""
    if not ctx.config.two_stage:
        return _stage1_bought(ctx).assign(stage=1)
    stage2 = ctx.run_dir.read_table(A.TEACHER_STAGE2).assign(stage=2)
    if ctx.config.train.stage2_data == "selected":
        return stage2
    stage1 = _stage1_bought(ctx).assign(stage=1)
    return pd.concat([stage1, stage2], ignore_index=True) if len(stage1) else stage2


def step_trust(ctx: RunContext) -> dict:
    from .signals.trust import trust_weights

    bought = _bought_for_last_stage(ctx)
    questions = ctx.run_dir.read_table(A.ROWS)[["id", "question"]]
    if not ctx.config.trust_mode.uses_ta:
        bought["ta_conf_teacher"] = np.nan
    else:
        scored = _score(ctx, bought[["id", "k", "text"]].merge(questions, on="id"), _parts(ctx, A.TRUST_PARTS, "trust"))
        conf = scored[["id", "k", "ta_conf"]].rename(columns={"ta_conf": "ta_conf_teacher"})
        bought = bought.merge(conf, on=["id", "k"])
    reference = None
    if ctx.config.calibrates_trust:
        reference = ctx.run_dir.read_table(A.CALIBRATION)["ta_conf"].to_numpy()
    trust = ctx.config.trust.model_copy(update={"scale": ctx.config.trust_scale})
    bought["weight"] = trust_weights(bought["ta_conf_teacher"], trust, reference).to_numpy()
    ctx.run_dir.write_table(A.TEACHER_WEIGHTED, bought)
    return {"rows": len(bought), "dropped": int((bought["weight"] == 0).sum()),
            "mean_weight": float(bought["weight"].mean())}


def calibration_references(config: Config) -> pd.DataFrame:
    """Outputs known to be right (question, text): held-out gold solutions of the synthetic
    task (a generator seed of their own), or the user's trust.calibration_files."""
    if config.data.source == SYNTHETIC:
        from .synthetic.problems import generate_problems, gold_solution

        syn = config.data.synthetic
        problems = generate_problems(config.trust.calibration_size, syn.seed + 2, syn.min_steps, syn.max_steps)
        return pd.DataFrame({"question": [p.question() for p in problems], "text": [gold_solution(p) for p in problems]})
    from pathlib import Path

    from .corpus import CorpusError

    frames = []
    for name in config.trust.calibration_files:
        path = Path(name) if Path(name).is_absolute() else Path(config.data.root) / name
        try:
            frame = pd.read_json(path, lines=True)
        except (OSError, ValueError) as exc:
            raise CorpusError(f"{path} (trust.calibration_files): not a readable JSON-lines file: {exc}") from None
        missing = {"question", "rationale"} - set(frame.columns)
        if missing or frame.empty:
            raise CorpusError(f"{path} (trust.calibration_files): expected records with 'question' and 'rationale'"
                              + (f"; missing {', '.join(sorted(missing))}" if missing else "; the file has none"))
        frames.append(frame[["question", "rationale"]].rename(columns={"rationale": "text"}))
    return pd.concat(frames, ignore_index=True)


def step_calibrate_trust(ctx: RunContext) -> dict:
    """The TA's confidence in outputs known to be right: the scale trust is measured on, fixed
    before any purchase it is applied to."""
    references = calibration_references(ctx.config)
    references = references.assign(id=[f"cal-{i}" for i in range(len(references))], k=0)
    scored = _score(ctx, references, _parts(ctx, A.CALIBRATION_PARTS, "calibrate_trust"))
    ctx.run_dir.write_table(A.CALIBRATION, scored[["id", "question", "text", "ta_conf"]])
    q = ctx.config.trust.calibration_quantile
    return {"rows": len(scored), "threshold": float(np.quantile(scored["ta_conf"], q)),
            "median_ta_conf": float(scored["ta_conf"].median())}


def step_train_stage2(ctx: RunContext) -> dict:
    weighted = ctx.run_dir.read_table(A.TEACHER_WEIGHTED)
    rows = _training_rows(ctx, weighted, weighted["weight"])
    init = _stage1_model(ctx) if ctx.config.train.stage2_init == "stage1" else ctx.models()["student"]
    return _train(ctx, "stage2", rows, init, final=True)


def requests_paid(steps: dict) -> int:
    """Teacher requests a run has used, over every invocation, from its manifest's steps."""
    return sum(steps.get(name, {}).get("rows", 0) for name in TEACHER_STEPS)


def final_model_path(ctx: RunContext) -> str:
    if ctx.config.stages == 0:  # base: the student as it came
        return ctx.models()["student"]
    return str(ctx.run_dir.path / (A.MODEL_STAGE2 if ctx.config.two_stage else A.MODEL_STAGE1))


def step_evaluate(ctx: RunContext) -> dict:
    from .evaluate import accuracy, answer_test_set

    rows = ctx.run_dir.read_table(A.ROWS)
    test = rows[rows["split"] == ctx.config.data.test_split]
    answered = answer_test_set(test, final_model_path(ctx), ctx.config.eval, ctx.executor)
    ctx.run_dir.write_table(A.ANSWERS, answered)
    return {**accuracy(answered), "rows": len(answered)}


def step_report(ctx: RunContext) -> dict:
    from pathlib import Path

    from .model_card import write_model_card
    from .report import write_report

    path, facts = write_report(ctx)
    if ctx.config.stages:  # a trained student: its folder explains itself
        write_model_card(ctx, Path(final_model_path(ctx)))
    ctx.tracker.result(facts, Path(final_model_path(ctx)) if ctx.config.stages else None)
    return {"path": str(path)}


# -- the plan ----------------------------------------------------------------------------

TEACHER_KEYS = ("teacher.source", "teacher.base_url", "teacher.model", "teacher.temperature",
                "teacher.max_tokens", "teacher.system_prompt", "teacher.synthetic", "teacher.recorded")
STUDENT_KEYS = ("models.student", "models.synthetic", "inference.chat_template")
TRUST_KEYS = ("trust", "models.ta", "inference", "train.stage2_data", "train.schedule")


def plan(config: Config) -> list[Step]:
    from .teacher.sources import TEACHERS

    recorded = TEACHERS[config.teacher.source].answers_from_records
    first = [Step("corpus", step_corpus, ("data",), writes=(A.ROWS, A.REJECTS))]
    if config.stages == 0:  # base: the student as it came, evaluated
        return first + [Step("evaluate", step_evaluate, ("eval",) + STUDENT_KEYS, ("corpus",),
                             reads=(A.ROWS,), writes=(A.ANSWERS,)),
                        Step("report", step_report, (), ("evaluate",), reads=(A.ROWS, A.ANSWERS))]
    calibrated = config.calibrates_trust
    calibrate = [Step("calibrate_trust", step_calibrate_trust,
                      ("trust.calibration_size", "trust.calibration_files", "models.ta", "inference", "data.synthetic",
                       "data.root"),
                      ("corpus",), reads=(A.ROWS,), writes=(A.CALIBRATION,))] if calibrated else []
    trust_after = ("calibrate_trust",) if calibrated else ()
    trust_reads = (A.CALIBRATION,) if calibrated else ()
    if recorded:
        first.append(Step("teacher_records", step_teacher_records, ("teacher.recorded", "data.root"), ("corpus",),
                          reads=(A.ROWS,), writes=(A.RECORDS, A.UNMATCHED)))
    # Which questions can be bought depends on the record when the teacher is recorded.
    pool_from = ("teacher_records",) if recorded else ("corpus",)
    # The warm-up depends on its size, not on the method's name: every two-stage method with
    # the same seed and budget buys, and trains on, the same warm-up (a paired comparison).
    first.append(Step("warmup_pick", step_warmup_pick, ("seed",), pool_from, derived=warmup_count,
                      reads=(A.ROWS,) + ((A.RECORDS,) if recorded else ()), writes=(A.PICKS_STAGE1,)))
    if has_warmup(config):
        first.append(Step("teacher_stage1", step_teacher_stage1, TEACHER_KEYS, ("warmup_pick",),
                          reads=(A.ROWS, A.PICKS_STAGE1), writes=(A.TEACHER_STAGE1,)))
        if config.one_stage_trust:  # ta_teacher_only: the TA weights the one purchase
            first += calibrate
            first.append(Step("trust", step_trust, TRUST_KEYS, ("teacher_stage1",) + trust_after,
                              reads=(A.ROWS, A.TEACHER_STAGE1) + trust_reads, writes=(A.TEACHER_WEIGHTED,)))
        first.append(Step("train_stage1", step_train_stage1, ("train",) + STUDENT_KEYS,
                          ("trust",) if config.one_stage_trust else ("teacher_stage1",),
                          derived=_stage1_role, reads=(A.ROWS, A.TEACHER_WEIGHTED if config.one_stage_trust
                                                       else A.TEACHER_STAGE1),
                          writes=(A.TRAIN_ROWS_STAGE1, A.MODEL_STAGE1)))
    last = [
        Step("evaluate", step_evaluate, ("eval",), ("train_stage2" if config.two_stage else "train_stage1",),
             reads=(A.ROWS, A.MODEL_STAGE2 if config.two_stage else A.MODEL_STAGE1), writes=(A.ANSWERS,)),
        Step("report", step_report, (), ("evaluate",), reads=(A.ROWS, A.ANSWERS)),
    ]
    if not config.two_stage:
        return first + last
    by_signals = config.selection_rule.uses_signals
    # The stage-2 candidates: the pool (less what a record cannot answer) less the warm-up.
    pool_reads = ((A.RECORDS,) if recorded else ()) + (A.TEACHER_STAGE1 if has_warmup(config) else A.PICKS_STAGE1,)
    stage1 = ("train_stage1",) if has_warmup(config) else ("warmup_pick",)
    second = []
    if by_signals:
        second += [
            # Without a warm-up the base student is sampled: then its name matters here.
            Step("sample", step_sample, ("inference", "seed", "selection.candidates")
                 + (() if has_warmup(config) else STUDENT_KEYS), stage1,
                 reads=(A.ROWS,) + pool_reads + ((A.MODEL_STAGE1,) if has_warmup(config) else ()),
                 writes=(A.SAMPLES,)),
            Step("score_samples", step_score_samples, ("inference", "models.ta"), ("sample",),
                 reads=(A.ROWS, A.SAMPLES), writes=(A.SAMPLES_SCORED,)),
        ]
    second += [
        Step("select", step_select, ("seed", "signals", "selection", "budget"),
             ("score_samples",) if by_signals else stage1,
             reads=(A.ROWS,) + pool_reads + ((A.SAMPLES_SCORED,) if by_signals else ()),
             writes=(A.QUESTION_SIGNALS, A.PICKS_STAGE2)),
        Step("teacher_stage2", step_teacher_stage2, TEACHER_KEYS, ("select",),
             reads=(A.ROWS, A.PICKS_STAGE2), writes=(A.TEACHER_STAGE2,)),
        *calibrate,
        Step("trust", step_trust, TRUST_KEYS, ("teacher_stage2",) + trust_after,
             reads=(A.ROWS, A.TEACHER_STAGE2, A.TEACHER_STAGE1 if has_warmup(config) else A.PICKS_STAGE1)
             + trust_reads, writes=(A.TEACHER_WEIGHTED,)),
        Step("train_stage2", step_train_stage2, ("train",) + STUDENT_KEYS, ("trust",), derived=lambda c: c.final_steps(),
             reads=(A.ROWS, A.TEACHER_WEIGHTED), writes=(A.TRAIN_ROWS_STAGE2, A.MODEL_STAGE2)),
    ]
    return first + second + last


def _stage1_role(config: Config) -> dict:
    """What decides stage 1's training besides its rows: gold weights, and whether it is the
    final student (the fair schedule's fixed steps) or the warm-up model of a two-stage method."""
    return {"oracle": config.gold_weights, "final": not config.two_stage,
            "steps": config.final_steps() if not config.two_stage and config.train.schedule == "fair" else None}


def fingerprint(config: Config, step: Step, upstream: dict[str, str]) -> str:
    payload = {
        "step": step.name,
        "version": __version__,
        "config": config.section_hash(*step.config_keys) if step.config_keys else "",
        "after": [upstream[name] for name in step.after],
    }
    if step.derived:
        payload["derived"] = step.derived(config)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_pipeline(config: Config, services: Optional[Services] = None) -> RunContext:
    """Run every unfinished step in order; return the context with what happened."""
    own_services = services is None
    services = services or Services(config)
    run_dir = RunDir(config.run_dir)
    run_dir.write_text("config.json", config.model_dump_json(indent=2))
    ctx = RunContext(config=config, run_dir=run_dir, services=services)
    steps = plan(config)
    for step in steps:  # fingerprints first, so the budget knows which purchases still count
        ctx.fingerprints[step.name] = fingerprint(config, step, ctx.fingerprints)
    if any(s.name.startswith("teacher_stage") and not run_dir.finished(s.name, ctx.fingerprints[s.name])
           for s in steps):
        ctx.teacher.preflight()  # a missing key or a dead endpoint stops the run here, in seconds
    try:
        for step in steps:
            fp = ctx.fingerprints[step.name]
            done = run_dir.finished(step.name, fp)
            if done and not all(run_dir.has(out) for out in step.writes):
                log.warning("step %-15s finished earlier but its output is gone; running it again", step.name)
                done = None
            if done and step.name != "report":
                ctx.step_log.append({"step": step.name, "status": "skipped", **_summary(done)})
                log.info("%-15s skipped (finished earlier)", step.name)
                continue
            log.info("step %-15s running", step.name, extra=LOG_ONLY)
            started = time.time()
            try:
                info = step.run(ctx)
            except OSError as exc:  # a full or read-only run directory, met by any writer of the step
                if exc.errno not in STORAGE_ERRNOS:
                    raise
                raise storage_problem(run_dir.path, f"step {step.name}", exc) from exc
            seconds = round(time.time() - started, 1)
            entry = {"fingerprint": fp, "seconds": seconds, **info}
            if step.name != "report":
                run_dir.record(step.name, entry)
            ctx.step_log.append({"step": step.name, "status": "ran", **_summary(entry)})
            log.info("%-15s done in %5.1f s  %s", step.name, seconds, _headline(info))
            log.info("step %-15s %s", step.name, _summary(info), extra=LOG_ONLY)
    finally:
        ctx.close()
        if own_services:
            services.shutdown()
    return ctx


def _headline(info: dict, most: int = 4) -> str:
    """A step's first few counts, for its console line (everything is in the run's log)."""
    shown = [f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
             for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"]
    return ", ".join(shown[:most])


def _summary(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("fingerprint", "finished_at")}
