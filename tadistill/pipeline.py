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

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from . import __version__
from .config import SYNTHETIC, Config
from .rundir import STORAGE_ERRNOS, RunDir, storage_problem
from .services import Services

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: Callable[["RunContext"], dict]
    config_keys: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    # What the step depends on that is computed from the config rather than one of its keys
    # (the warm-up size, say), so methods that agree on it share the step's output.
    derived: Optional[Callable[[Config], Any]] = None


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

    def budget(self):
        """The run's budget, already charged with what finished teacher steps used and with
        requests a crashed invocation left in flight (they may have been paid).

        A live teacher's budget is one named Ray actor shared by every teacher worker; a
        recorded teacher answers in the driver from a local one.
        """
        if self._budget is None:
            from .teacher.budget import Budget, Spend, ledger_actor

            spent = Spend()
            for name in ("teacher_stage1", "teacher_stage2"):
                done = self.run_dir.finished(name, self.fingerprints.get(name, ""))
                if done:
                    spent = spent + Spend(done["rows"], done.get("prompt_tokens", 0) + done.get("completion_tokens", 0),
                                          done.get("cost", 0.0))
            limits = self.config.budget
            if self.config.teacher.source == "recorded":
                self._budget = Budget(limits.requests, limits.tokens, limits.cost, spent)
            else:
                from .teacher.cache import ResponseCache

                cache = ResponseCache(self.teacher_cache_dir())
                orphaned = cache.orphan_spend(self.price())
                if orphaned.requests:
                    log.warning("teacher: %d request(s) were in flight when an earlier invocation died; "
                                "they are charged to the budget", orphaned.requests)
                spent = spent + orphaned
                self.services.ray()
                self._budget = ledger_actor(self.ledger_name(), limits.requests, limits.tokens, limits.cost, spent)
        return self._budget

    def teacher_cache_dir(self):
        return self.run_dir.path / "teacher" / "cache"

    def ledger_name(self) -> str:
        return "tadistill-budget-" + hashlib.sha256(str(self.run_dir.path.resolve()).encode()).hexdigest()[:12]

    def price(self):
        price = self.config.budget.prices.get(self.config.teacher.model)
        return (price.prompt, price.completion) if price else None


# -- the steps ---------------------------------------------------------------------------

def step_corpus(ctx: RunContext) -> dict:
    from .corpus import read_corpus, write_synthetic_source

    ctx.services.ray()
    data = ctx.config.data
    if data.source == SYNTHETIC:
        data = write_synthetic_source(data, ctx.run_dir.path / "corpus" / "source")
    corpus = read_corpus(data)
    ctx.run_dir.write_table("corpus/rows.parquet", corpus.rows)
    ctx.run_dir.write_table("corpus/rejects.parquet", corpus.rejects)
    rejects_path = str(ctx.run_dir.path / "corpus/rejects.parquet")
    for split, count in corpus.counts.items():
        log.info("corpus: split %-10s %6d rows in, %6d kept, %5d rejected", split, count["rows_in"], count["kept"],
                 count["rejected"])
    if len(corpus.rejects):
        log.warning("corpus: %d row(s) rejected; see %s", len(corpus.rejects), rejects_path)
    corpus.check_reject_share(data.max_reject_share, rejects_path)
    return {"rows": len(corpus.rows), "rejected": len(corpus.rejects), "splits": corpus.counts}


def step_teacher_records(ctx: RunContext) -> dict:
    """Import the recorded teacher outputs and match them to corpus rows (no budget spent here)."""
    from .teacher.recorded import import_records

    rows = ctx.run_dir.read_table("corpus/rows.parquet")
    records, unmatched = import_records(ctx.config.teacher.recorded, ctx.config.data.root, rows)
    ctx.run_dir.write_table("teacher/records.parquet", records)
    ctx.run_dir.write_table("teacher/unmatched_records.parquet", unmatched)
    pool = rows[rows["split"] == ctx.config.data.pool_split]
    without = int((~pool["id"].isin(set(records["id"]))).sum())
    if len(unmatched):
        log.warning("recorded teacher: %d output(s) match no corpus row; see %s", len(unmatched),
                    ctx.run_dir.path / "teacher/unmatched_records.parquet")
    if without:
        log.warning("recorded teacher: %d of %d pool questions have no recorded output and cannot be bought",
                    without, len(pool))
    return {"rows": len(records), "questions": int(records["id"].nunique()), "unmatched": len(unmatched),
            "pool_without_record": without}


def pool_rows(ctx: RunContext) -> pd.DataFrame:
    """Questions the method may buy: the pool split, less those a recorded teacher cannot answer."""
    rows = ctx.run_dir.read_table("corpus/rows.parquet")
    pool = rows[rows["split"] == ctx.config.data.pool_split]
    if ctx.config.teacher.source == "recorded":
        recorded = set(ctx.run_dir.read_table("teacher/records.parquet")["id"])
        pool = pool[pool["id"].isin(recorded)]
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
    ctx.run_dir.write_table("picks/stage1.parquet", picked)
    return {"rows": len(picked)}


def _ledger(ctx: RunContext) -> str:
    ctx.budget()  # creates the run's named budget actor
    return ctx.ledger_name()


def _buy(ctx: RunContext, picks_path: str, out_name: str) -> dict:
    from .tasks.answers import add_answers

    picks = ctx.run_dir.read_table(picks_path)
    rows = ctx.run_dir.read_table("corpus/rows.parquet")
    if ctx.config.teacher.source == "recorded":
        from .teacher.recorded import RecordedTeacher

        teacher = RecordedTeacher(ctx.run_dir.read_table("teacher/records.parquet"))
        bought, report = teacher.buy(picks, ctx.budget(), desc=out_name)
    else:
        from .tasks.prompts import system_prompt
        from .teacher.step import buy_with_ray_data

        # One task, one answer type: every corpus row carries it.
        prompt = system_prompt(ctx.config.teacher.system_prompt, rows["answer_type"].iloc[0])
        bought, report = buy_with_ray_data(
            picks, ctx.config.teacher, ctx.services.teacher_url, ctx.teacher_cache_dir(), prompt,
            _ledger(ctx), ctx.price(), desc=out_name,
        )
    bought = add_answers(bought, rows, ctx.config.data.answer_fallback)
    ctx.run_dir.write_table(f"teacher/{out_name}.parquet", bought)
    ctx.teacher_sent += report.sent
    log.info("%s: bought %d (sent %d, cache hits %d, truncated %d)", out_name, report.bought, report.sent,
             report.cache_hits, report.truncated)
    return {
        "rows": report.bought, "outputs": len(bought), "sent": report.sent, "cache_hits": report.cache_hits,
        "not_bought_budget": report.not_bought_budget, "unextractable_answers": int(bought["answer"].isna().sum()),
        "truncated": report.truncated, "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens, "cost": round(report.cost, 6),
    }


def step_teacher_stage1(ctx: RunContext) -> dict:
    return _buy(ctx, "picks/stage1.parquet", "teacher_stage1")


def _training_rows(ctx: RunContext, teacher: pd.DataFrame, weights: Optional[pd.Series] = None) -> pd.DataFrame:
    from .tasks.prompts import student_prompt, student_target

    questions = ctx.run_dir.read_table("corpus/rows.parquet").set_index("id")["question"]
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
        model_out=ctx.run_dir.file(f"{stage}/model"),
        tracking_dirs={
            "tensorboard": train.tracking.tensorboard_dir or str(ctx.run_dir.path.resolve() / "tensorboard"),
            "mlflow": train.tracking.mlflow_tracking_uri or f"sqlite:///{ctx.run_dir.path.resolve() / 'mlflow.db'}",
            "wandb": str(ctx.run_dir.path.resolve()),
        },
    )
    ctx.run_dir.write_table(f"{stage}/train_rows.parquet", rows)
    metrics["optimizer_steps"] = metrics["steps"]
    metrics["examples_seen"] = metrics["steps"] * train.global_batch_size
    (ctx.run_dir.path / stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return {k: v for k, v in metrics.items() if k not in ("step_losses", "step_lrs")}


def step_train_stage1(ctx: RunContext) -> dict:
    """The warm-up; for a one-stage method the whole training, weighted by gold (oracle) or
    by the TA's trust in each output (ta_teacher_only)."""
    if ctx.config.gold_weights:
        teacher = ctx.run_dir.read_table("teacher/teacher_stage1.parquet")
        weights = _gold_weights(ctx, teacher)
    elif ctx.config.one_stage_trust:
        teacher = ctx.run_dir.read_table("trust/teacher_weighted.parquet")
        weights = teacher["weight"]
    else:
        teacher, weights = ctx.run_dir.read_table("teacher/teacher_stage1.parquet"), None
    return _train(ctx, "stage1", _training_rows(ctx, teacher, weights), ctx.models()["student"],
                  final=not ctx.config.two_stage)


def _gold_weights(ctx: RunContext, teacher: pd.DataFrame) -> pd.Series:
    """The oracle baseline: weight 1 where the teacher's answer matches gold, 0 elsewhere."""
    gold = ctx.run_dir.read_table("corpus/rows.parquet").set_index("id")["gold"]
    missing = teacher["id"].map(gold).isna()
    if missing.any():
        raise ValueError(f"method 'oracle' needs gold answers in the pool split; {int(missing.sum())} bought "
                         f"questions have none (e.g. id {teacher.loc[missing, 'id'].iloc[0]!r})")
    right = teacher["answer"].notna() & (teacher["answer"] == teacher["id"].map(gold))
    return right.astype(float)


def _stage1_bought(ctx: RunContext) -> pd.DataFrame:
    """The warm-up purchase; empty when the method has no warm-up."""
    if not has_warmup(ctx.config):
        return ctx.run_dir.read_table("picks/stage1.parquet").iloc[0:0].assign(k=0, text="", answer=None)
    return ctx.run_dir.read_table("teacher/teacher_stage1.parquet")


def _stage1_model(ctx: RunContext) -> str:
    """The model whose signals steer stage 2: the warmed-up student, or the base one without a warm-up."""
    return str(ctx.run_dir.path / "stage1" / "model") if has_warmup(ctx.config) else ctx.models()["student"]


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
    from ray import serve

    from .inference.deployments import SAMPLER_APP, deploy_sampler
    from .inference.drive import sample_pool

    inference = ctx.config.inference
    sample = functools.partial(sample_pool, _remaining_pool(ctx), inference.batch_size, ctx.config.data.num_blocks,
                               ctx.config.data.answer_fallback, parts=_parts(ctx, "signals/samples_parts", "sample"),
                               retry_for_s=inference.retry_for_s)
    if inference.launcher == "local":
        samples = sample(local={"model_path": _stage1_model(ctx), **inference.model_dump()})
    else:
        ctx.services.serve()
        deploy_sampler(_stage1_model(ctx), inference)
        try:
            samples = sample()
        finally:
            serve.delete(SAMPLER_APP)  # give its CPUs back to the steps that follow
    ctx.run_dir.write_table("signals/samples.parquet", samples)
    return {"rows": len(samples), "questions": int(samples["id"].nunique()),
            "unextractable": int(samples["answer"].isna().sum())}


def _parts(ctx: RunContext, folder: str, step: str):
    """Where a step writes its output block by block, and the fingerprint the blocks belong to."""
    return ctx.run_dir.path / folder, ctx.fingerprints[step]


def _score(ctx: RunContext, rows: pd.DataFrame, parts) -> pd.DataFrame:
    from ray import serve

    from .inference.deployments import SCORER_APP, deploy_scorer
    from .inference.drive import score_texts

    inference = ctx.config.inference
    score = functools.partial(score_texts, rows, inference.batch_size, ctx.config.data.num_blocks, parts=parts,
                              retry_for_s=inference.retry_for_s, confidence=inference.ta_confidence)
    if inference.launcher == "local":
        return score(local_model=ctx.models()["ta"])
    if inference.ta_app:  # a long-lived scorer (a RayService): use it, leave it up
        ctx.services.ray()
        return score(app_name=inference.ta_app)
    ctx.services.serve()
    deploy_scorer(ctx.models()["ta"], inference)
    try:
        return score()
    finally:
        serve.delete(SCORER_APP)


def step_score_samples(ctx: RunContext) -> dict:
    samples = ctx.run_dir.read_table("signals/samples.parquet")
    questions = _remaining_pool(ctx)[["id", "question"]]
    scored = _score(ctx, samples.merge(questions, on="id"), _parts(ctx, "signals/scored_parts", "score_samples"))
    scored = scored.drop(columns=["question"]).sort_values(["id", "k"]).reset_index(drop=True)
    ctx.run_dir.write_table("signals/samples_scored.parquet", scored)
    return {"rows": len(scored), "mean_ta_conf": float(scored["ta_conf"].mean())}


def step_select(ctx: RunContext) -> dict:
    from .signals.compute import question_signals
    from .signals.selection import select

    config = ctx.config
    pool = _remaining_pool(ctx)
    count = min(config.budget.requests - warmup_count(config), len(pool))
    if config.selection_rule.uses_signals:
        signals = question_signals(ctx.run_dir.read_table("signals/samples_scored.parquet"), config.signals)
    else:
        signals = pd.DataFrame({"id": pool["id"], "self_consistency": np.nan, "ta_conf_student": np.nan})
    chosen = select(signals, count, config.selection.strategy, config.signals, config.seed)
    ctx.run_dir.write_table("signals/question_signals.parquet", chosen)
    picks = chosen[chosen["selected"]].sort_values(["score", "id"], ascending=[False, True])
    picks = picks[["id"]].merge(pool[["id", "question"]], on="id", how="left")
    ctx.run_dir.write_table("picks/stage2.parquet", picks)
    return {"rows": len(picks), "candidates": len(chosen)}


def step_teacher_stage2(ctx: RunContext) -> dict:
    return _buy(ctx, "picks/stage2.parquet", "teacher_stage2")


def _bought_for_last_stage(ctx: RunContext) -> pd.DataFrame:
    """Teacher outputs the last stage trains on: a one-stage method's purchase; in stage 2,
    every purchase ('all') or the stage-2 ones only."""
    if not ctx.config.two_stage:
        return _stage1_bought(ctx).assign(stage=1)
    stage2 = ctx.run_dir.read_table("teacher/teacher_stage2.parquet").assign(stage=2)
    if ctx.config.train.stage2_data == "selected":
        return stage2
    stage1 = _stage1_bought(ctx).assign(stage=1)
    return pd.concat([stage1, stage2], ignore_index=True) if len(stage1) else stage2


def step_trust(ctx: RunContext) -> dict:
    from .signals.trust import trust_weights

    bought = _bought_for_last_stage(ctx)
    questions = ctx.run_dir.read_table("corpus/rows.parquet")[["id", "question"]]
    if not ctx.config.trust_mode.uses_ta:
        bought["ta_conf_teacher"] = np.nan
    else:
        scored = _score(ctx, bought[["id", "k", "text"]].merge(questions, on="id"), _parts(ctx, "trust/scored_parts", "trust"))
        conf = scored[["id", "k", "ta_conf"]].rename(columns={"ta_conf": "ta_conf_teacher"})
        bought = bought.merge(conf, on=["id", "k"])
    reference = None
    if ctx.config.calibrates_trust:
        reference = ctx.run_dir.read_table("trust/calibration.parquet")["ta_conf"].to_numpy()
    trust = ctx.config.trust.model_copy(update={"scale": ctx.config.trust_scale})
    bought["weight"] = trust_weights(bought["ta_conf_teacher"], trust, reference).to_numpy()
    ctx.run_dir.write_table("trust/teacher_weighted.parquet", bought)
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
    scored = _score(ctx, references, _parts(ctx, "trust/calibration_parts", "calibrate_trust"))
    ctx.run_dir.write_table("trust/calibration.parquet", scored[["id", "question", "text", "ta_conf"]])
    q = ctx.config.trust.calibration_quantile
    return {"rows": len(scored), "threshold": float(np.quantile(scored["ta_conf"], q)),
            "median_ta_conf": float(scored["ta_conf"].median())}


def step_train_stage2(ctx: RunContext) -> dict:
    weighted = ctx.run_dir.read_table("trust/teacher_weighted.parquet")
    rows = _training_rows(ctx, weighted, weighted["weight"])
    init = _stage1_model(ctx) if ctx.config.train.stage2_init == "stage1" else ctx.models()["student"]
    return _train(ctx, "stage2", rows, init, final=True)


def final_model_path(ctx: RunContext) -> str:
    if ctx.config.stages == 0:  # base: the student as it came
        return ctx.models()["student"]
    return str(ctx.run_dir.path / ("stage2" if ctx.config.two_stage else "stage1") / "model")


def step_evaluate(ctx: RunContext) -> dict:
    from .evaluate import accuracy, answer_test_set

    in_process = ctx.config.inference.launcher == "local"
    if not in_process:
        ctx.services.ray()
    rows = ctx.run_dir.read_table("corpus/rows.parquet")
    test = rows[rows["split"] == ctx.config.data.test_split]
    answered = answer_test_set(test, final_model_path(ctx), ctx.config.eval, ctx.config.data.answer_fallback,
                               in_process=in_process)
    ctx.run_dir.write_table("eval/answers.parquet", answered)
    return {**accuracy(answered), "rows": len(answered)}


def step_report(ctx: RunContext) -> dict:
    from .report import write_report

    path = write_report(ctx)
    return {"path": str(path)}


# -- the plan ----------------------------------------------------------------------------

TEACHER_KEYS = ("teacher.source", "teacher.base_url", "teacher.model", "teacher.temperature",
                "teacher.max_tokens", "teacher.system_prompt", "teacher.synthetic", "teacher.recorded")
STUDENT_KEYS = ("models.student", "models.synthetic")
TRUST_KEYS = ("trust", "models.ta", "inference", "train.stage2_data", "train.schedule")


def plan(config: Config) -> list[Step]:
    recorded = config.teacher.source == "recorded"
    first = [Step("corpus", step_corpus, ("data",))]
    if config.stages == 0:  # base: the student as it came, evaluated
        return first + [Step("evaluate", step_evaluate, ("eval",) + STUDENT_KEYS, ("corpus",)),
                        Step("report", step_report, (), ("evaluate",))]
    calibrated = config.calibrates_trust
    calibrate = [Step("calibrate_trust", step_calibrate_trust,
                      ("trust.calibration_size", "trust.calibration_files", "models.ta", "inference", "data.synthetic",
                       "data.root"),
                      ("corpus",))] if calibrated else []
    trust_after = ("calibrate_trust",) if calibrated else ()
    if recorded:
        first.append(Step("teacher_records", step_teacher_records, ("teacher.recorded", "data.root"), ("corpus",)))
    # Which questions can be bought depends on the record when the teacher is recorded.
    pool_from = ("teacher_records",) if recorded else ("corpus",)
    # The warm-up depends on its size, not on the method's name: every two-stage method with
    # the same seed and budget buys, and trains on, the same warm-up (a paired comparison).
    first.append(Step("warmup_pick", step_warmup_pick, ("seed",), pool_from, derived=warmup_count))
    if has_warmup(config):
        first.append(Step("teacher_stage1", step_teacher_stage1, TEACHER_KEYS, ("warmup_pick",)))
        if config.one_stage_trust:  # ta_teacher_only: the TA weights the one purchase
            first += calibrate
            first.append(Step("trust", step_trust, TRUST_KEYS, ("teacher_stage1",) + trust_after))
        first.append(Step("train_stage1", step_train_stage1, ("train",) + STUDENT_KEYS,
                          ("trust",) if config.one_stage_trust else ("teacher_stage1",),
                          derived=_stage1_role))
    last = [
        Step("evaluate", step_evaluate, ("eval",), ("train_stage2" if config.two_stage else "train_stage1",)),
        Step("report", step_report, (), ("evaluate",)),
    ]
    if not config.two_stage:
        return first + last
    by_signals = config.selection_rule.uses_signals
    stage1 = ("train_stage1",) if has_warmup(config) else ("warmup_pick",)
    second = []
    if by_signals:
        second += [
            # Without a warm-up the base student is sampled: then its name matters here.
            Step("sample", step_sample, ("inference", "seed", "selection.candidates")
                 + (() if has_warmup(config) else STUDENT_KEYS), stage1),
            Step("score_samples", step_score_samples, ("inference", "models.ta"), ("sample",)),
        ]
    second += [
        Step("select", step_select, ("seed", "signals", "selection", "budget"),
             ("score_samples",) if by_signals else stage1),
        Step("teacher_stage2", step_teacher_stage2, TEACHER_KEYS, ("select",)),
        *calibrate,
        Step("trust", step_trust, TRUST_KEYS, ("teacher_stage2",) + trust_after),
        Step("train_stage2", step_train_stage2, ("train",) + STUDENT_KEYS, ("trust",), derived=lambda c: c.final_steps()),
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
    try:
        for step in steps:
            fp = ctx.fingerprints[step.name]
            done = run_dir.finished(step.name, fp)
            if done and step.name != "report":
                ctx.step_log.append({"step": step.name, "status": "skipped", **_summary(done)})
                log.info("step %-15s skipped (finished earlier)", step.name)
                continue
            log.info("step %-15s running", step.name)
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
            log.info("step %-15s done in %.1fs %s", step.name, seconds, _summary(info))
    finally:
        if own_services:
            services.shutdown()
    return ctx


def _summary(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("fingerprint", "finished_at")}
