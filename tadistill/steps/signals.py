"""The signal steps of a round, and trust: the round's student samples its candidates, the TA
scores the samples, the selection rule picks the round's purchase; the TA's confidence in the
teacher's outputs (on the scale the calibration step fixes before any purchase) weights them.

Every step reads and writes the artifacts plan.py declares for it; a round is named `round<k>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import pandas as pd

from ..artifacts import (CALIBRATION, CALIBRATION_PARTS, LABELLED, LABELLED_PARTS, LABELLED_PURCHASE, LEARNED, ROWS,
                         VERIFIER, Artifact, Folder, bought, picks, question_signals, round_name, samples, samples_parts,
                         samples_scored, scored_parts, trust_parts, trusted)
from ..config import SYNTHETIC, Config
from .teacher import bought_ids, earlier_purchases, pool_rows

if TYPE_CHECKING:
    from ..context import RunContext


def candidates(ctx: "RunContext", k: int) -> pd.DataFrame:
    """Round k's candidates: pool questions not bought before it, or a seeded random sample of
    selection.candidates of them (signals cost a sampling and a scoring per candidate)."""
    pool = pool_rows(ctx)
    taken = bought_ids(ctx, earlier_purchases(ctx.config, k))
    remaining = pool[~pool["id"].isin(taken)].reset_index(drop=True)
    limit = ctx.config.selection.candidates
    if limit and limit < len(remaining):
        remaining = remaining.sample(n=limit, random_state=round_seed(ctx.config, k))
        remaining = remaining.sort_values("id").reset_index(drop=True)
    return remaining


def round_seed(config: Config, k: int) -> int:
    """Seed of round k's random choices: the run's seed in round 1, another in each later round."""
    return config.seed + k - 1


def step_sample(ctx: "RunContext", k: int, student: Optional[Folder]) -> dict:
    """The round's student (the base student when it trained none) samples every candidate."""
    name = round_name(k)
    model = str(ctx.run_dir.location(student)) if student else ctx.models()["student"]
    drawn = ctx.executor.sample(model, candidates(ctx, k), ctx.parts(samples_parts(name)))
    ctx.run_dir.write_table(samples(name), drawn)
    return {"rows": len(drawn), "questions": int(drawn["id"].nunique()),
            "unextractable": int(drawn["answer"].isna().sum())}


def _score(ctx: "RunContext", rows: pd.DataFrame, parts) -> pd.DataFrame:
    return ctx.executor.score(ctx.models()["ta"], rows, parts)


def _with_questions(ctx: "RunContext", frame: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(ctx.run_dir.read_table(ROWS)[["id", "question"]], on="id")


def step_score(ctx: "RunContext", k: int) -> dict:
    """The TA's confidence in each of the round's samples."""
    name = round_name(k)
    drawn = ctx.run_dir.read_table(samples(name))
    scored = _score(ctx, _with_questions(ctx, drawn), ctx.parts(scored_parts(name)))
    scored = scored.drop(columns=["question"]).sort_values(["id", "k"]).reset_index(drop=True)
    ctx.run_dir.write_table(samples_scored(name), scored)
    return {"rows": len(scored), "mean_ta_conf": float(scored["ta_conf"].mean())}


def step_select(ctx: "RunContext", k: int, students: tuple = (), trained_on: Optional[Artifact] = None) -> dict:
    """The round's purchase: its share of the budget, picked among the candidates by the rule.
    `students`: (before, now), the students a rule that measures progress compares on the probe;
    `trained_on`: what was bought before the round, which a regime test trains its probe students
    on (each without a slice of it) and a committee its members (each on a resample of it)."""
    from ..signals.compute import question_signals as signals_of
    from ..signals.selection import select

    config, name = ctx.config, round_name(k)
    pool = candidates(ctx, k)
    already = sum(ctx.run_dir.read_table(t)["id"].nunique() for t in earlier_purchases(config, k)[1:])
    count = max(0, min(config.round_targets()[k - 1] - already, len(pool)))
    info: dict = {}
    if config.selection_uses_signals:
        signals = signals_of(ctx.run_dir.read_table(samples_scored(name)), config.signals,
                             pass_level=calibration_level(ctx) if config.selection_needs_calibration else None)
    else:
        signals = pd.DataFrame({"id": pool["id"], "self_consistency": np.nan, "ta_conf_student": np.nan})
    signals = signals.assign(question_length=signals["id"].map(pool.set_index("id")["question"].str.len()))
    if config.selection_measures_progress:
        signals, info = _with_progress(ctx, signals, pool, students)
    if config.selection_probes_slices:
        signals, info = _with_regime(ctx, signals, trained_on, round_seed(config, k))
    if config.selection_trains_committee:
        from .committee import with_committee

        signals, info = with_committee(ctx, signals, pool, trained_on, round_seed(config, k))
    chosen = select(signals, count, config.selection.strategy, config.signals, round_seed(config, k), config.selection)
    ctx.run_dir.write_table(question_signals(name), chosen)
    picked = chosen[chosen["selected"]].sort_values(["score", "id"], ascending=[False, True])
    picked = picked[["id"]].merge(pool[["id", "question"]], on="id", how="left")
    ctx.run_dir.write_table(picks(name), picked)
    return {"rows": len(picked), "candidates": len(chosen), "at_random": int(chosen["at_random"].sum()), **info}


def _with_progress(ctx: "RunContext", signals: pd.DataFrame, pool: pd.DataFrame, students: tuple):
    """The candidates with their length group and its weight, from the progress the round's
    student made on the labelled probe over the student before it (signals/progress.py); and what
    was measured and decided, for the manifest and the report."""
    from ..evaluate import labelled_probe, probe_correct
    from ..signals.progress import group_of, item_weights, length_edges, measure_progress

    config = ctx.config
    before, now = students
    lengths = pool.set_index("id")["question"].str.len()
    edges = length_edges(lengths, config.selection.groups)
    signals = signals.assign(group=signals["id"].map(group_of(lengths, edges)))
    if now is None:  # nothing was trained this round: nothing to measure
        return signals.assign(progress_weight=1.0), {"progress": "no round student to measure: bought at random"}
    probe = labelled_probe(ctx)
    start = ctx.models()["student"] if before is None else str(ctx.run_dir.location(before))
    progress = measure_progress(group_of(probe["question"].str.len(), edges), probe_correct(ctx, probe, start),
                                probe_correct(ctx, probe, str(ctx.run_dir.location(now))), config.selection.evidence_z)
    weights = item_weights(signals["group"], progress)
    return signals.assign(progress_weight=weights.to_numpy()), {
        "progress": progress.said(), "probe_questions": len(probe), "bought_at_random_for_lack_of_progress": progress.random}


def _with_regime(ctx: "RunContext", signals: pd.DataFrame, sliced: Optional[Artifact], seed: int):
    """The candidates with the priority the run's regime test gives them (signals/regime.py): probe
    students trained on what was bought minus each slice answer the labelled probe; and what was
    measured and decided, for the manifest and the report."""
    from ..signals.regime import FEWEST_BOUGHT, decide, purchase_priority

    config = ctx.config
    lengths = signals["question_length"]
    outputs = ctx.run_dir.read_table(sliced) if sliced is not None else pd.DataFrame()
    if len(outputs) < FEWEST_BOUGHT:
        return (signals.assign(regime_priority=purchase_priority(lengths, "random", seed).to_numpy()),
                {"regime": f"{len(outputs)} outputs bought before this round, too few to slice: bought at random",
                 "regime_decision": "random"})
    correct, left_out = _probe_students_without_slices(ctx, outputs, seed)
    regime = decide(correct, left_out, config.selection.evidence_z)
    priority = purchase_priority(lengths, regime.decision, seed)
    return signals.assign(regime_priority=priority.to_numpy()), {
        "regime": regime.said(), "regime_decision": regime.decision, "probe_questions": len(next(iter(correct.values()))),
        "probe_students": len(correct), "probe_examples": int(sum(len(outputs) - n for n in left_out.values()))}


def _probe_students_without_slices(ctx: "RunContext", outputs: pd.DataFrame, seed: int):
    """Per slice (signals/regime.py), a probe student trained from the base student on the bought
    outputs without it, in this process and with the round students' settings, and its answers to
    the labelled probe; and how many outputs each left out. The students are scratch: trained,
    asked, deleted."""
    from ..evaluate import labelled_probe, probe_correct
    from ..signals.regime import slices
    from .scratch import bought_rows, fine_tune_in_process, round_student_settings, scratch_folder

    config, base = ctx.config, ctx.models()["student"]
    rows = bought_rows(ctx, outputs)
    questions = ctx.run_dir.read_table(ROWS).set_index("id")["question"]
    cut = slices(rows["id"].map(questions).str.len(), config.selection.slice_share, seed)
    probe = labelled_probe(ctx)
    correct, left_out = {}, {}
    with scratch_folder(ctx, "regime-") as scratch:
        for name, leave in cut.items():
            fine_tune_in_process(ctx, base, rows.drop(index=leave), scratch / name,
                                 **round_student_settings(config, seed))
            correct[name], left_out[name] = probe_correct(ctx, probe, str(scratch / name)), len(leave)
    return correct, left_out


def calibration_level(ctx: "RunContext") -> float:
    """The TA confidence that `trust.calibration_quantile` of the outputs known to be right fall
    below: the line between looking right and not, for trust and for a rule that reads samples."""
    return _level(ctx.run_dir.read_table(CALIBRATION)["ta_conf"], ctx.config.trust.calibration_quantile)


def _level(reference: pd.Series, quantile: float) -> float:
    return float(np.quantile(reference.to_numpy(dtype=float), quantile))


def _ta_scorer(ctx: "RunContext", parts, model: Optional[str] = None):
    """score(rows (id, k, question, text), confidence=None) -> the TA's confidence per row (or
    `model`'s: a verifier fine-tuned from it), in the rows' order; `parts` resumes the first
    scoring of a step (later ones rescore)."""
    unused = [parts]  # the step's resumable blocks belong to its first scoring
    path = model or ctx.models()["ta"]

    def score(rows: pd.DataFrame, confidence: Optional[str] = None) -> pd.Series:
        scored = ctx.executor.score(path, rows, unused.pop() if unused else None, confidence=confidence)
        merged = rows[["id", "k"]].merge(scored[["id", "k", "ta_conf"]], on=["id", "k"], how="left")
        return pd.Series(merged["ta_conf"].to_numpy(dtype=float), index=rows.index)

    return score


def _trust_signal(ctx: "RunContext"):
    """The run's trust signal; one that learns comes with the model trust.learn fitted."""
    cls = _trust_signal_class(ctx.config)
    return cls(ctx.run_dir.read_table(LEARNED)) if ctx.config.learns_trust else cls()


def _signal_scorer(ctx: "RunContext", parts):
    """The scorer the trust signal asks: the TA's, or the verifier's that trust.learn fine-tuned."""
    from ..config import choices

    if not choices.fact("trust.signal", ctx.config.trust.signal, "uses_ta"):
        return None
    trained = choices.fact("trust.signal", ctx.config.trust.signal, "trains_model") and ctx.config.learns_trust
    return _ta_scorer(ctx, parts, str(ctx.run_dir.location(VERIFIER)) if trained else None)


def _signal_reference(ctx: "RunContext", signal, score, answer_type: str) -> Optional[np.ndarray]:
    """The trust signal on the outputs known to be right (the calibration step's, read as answers
    of `answer_type`; a learning signal's right labelled outputs, valued cross-fitted), for the
    'calibrated' scale; None where the scale does not read one."""
    from ..config import choices
    from ..tasks.answers import extract_answer

    if not choices.fact("trust.scale", ctx.config.trust_scale, "needs_reference"):
        return None
    if ctx.config.learns_trust:
        labelled = ctx.run_dir.read_table(LABELLED)
        return labelled.loc[labelled["right"], "value"].to_numpy(dtype=float)
    if not ctx.config.calibrates_trust:
        return None
    calibration = ctx.run_dir.read_table(CALIBRATION)
    known = calibration.assign(k=0, answer_type=answer_type,
                               answer=[extract_answer(t, answer_type) for t in calibration["text"]])
    return signal.reference(known, score, calibration["ta_conf"].to_numpy(dtype=float))


def step_trust(ctx: "RunContext", name: str, new: list[tuple[int, Artifact]], previous: Optional[Artifact]) -> dict:
    """Every output bought so far with its trust signal (`trust_value`: trust.signal's value,
    the TA's confidence in the output by default) and its trust weight: the `previous` trust
    table's outputs keep the values they had, the `new` purchases (round index, outputs) are
    valued; weights are placed on the whole set (a rank scale needs all of it). A signal that
    compares a question's several outputs values every output again, since a round may add to them."""
    from ..config import choices
    from ..signals.trust import trust_weights

    config = ctx.config
    fresh = [ctx.run_dir.read_table(table).assign(round=index) for index, table in new]
    added = pd.concat([frame for frame in fresh if len(frame)] or fresh[:1], ignore_index=True)
    kept = ctx.run_dir.read_table(previous).drop(columns=["weight"]) if previous is not None else None
    if not config.trust_uses_ta:
        added["trust_value"] = np.nan
        reference, info = None, {"scored": 0}
    else:
        signal = _trust_signal(ctx)
        if kept is not None and choices.fact("trust.signal", config.trust.signal, "several_outputs"):
            # The earlier outputs are valued again with the new ones (a round may add to a question's).
            added, kept = pd.concat([kept.drop(columns=["trust_value"]), added], ignore_index=True), None
        rows = ctx.run_dir.read_table(ROWS)[["id", "question", "answer_type"]]
        score = _signal_scorer(ctx, ctx.parts(trust_parts(name)))
        valued = signal.values(added.merge(rows, on="id", how="left"), score)
        added["trust_value"] = valued.values.to_numpy(dtype=float)
        reference = _signal_reference(ctx, signal, score, rows["answer_type"].mode().iloc[0])
        info = {"scored": valued.ta_scored, "signal": config.trust.signal, "ta_scored": valued.ta_scored,
                **({"notes": valued.notes} if valued.notes else {})}
    if kept is not None:
        added = pd.concat([kept, added], ignore_index=True)
    trust = config.trust.model_copy(update={"scale": config.trust_scale})
    added["weight"] = trust_weights(added["trust_value"], trust, reference).to_numpy()
    ctx.run_dir.write_table(trusted(name), added)
    return {"rows": len(added), **info, "dropped": int((added["weight"] == 0).sum()),
            "mean_weight": float(added["weight"].mean())}


def judge_outputs(ctx: "RunContext", outputs: pd.DataFrame) -> pd.Series:
    """Trust in outputs just bought (a cascade escalates on it), whatever the run's trust.mode: the
    trust signal's place on its calibrated scale, fixed before any purchase (1 at or above the
    level trust.calibration_quantile of outputs known to be right fall below, less below it), so
    a batch is judged alone. The scale's reference is computed once an invocation."""
    from ..config import choices
    from ..tasks.answers import add_answers

    rows = ctx.run_dir.read_table(ROWS)
    answered = add_answers(outputs.reset_index(drop=True), rows, ctx.config.data.answer_fallback)
    answered = answered.merge(rows[["id", "question", "answer_type"]], on="id", how="left")
    signal = _trust_signal(ctx)
    score = _signal_scorer(ctx, None)
    valued = signal.values(answered, score)
    if "judge_reference" not in ctx.memo:
        ctx.memo["judge_reference"] = _signal_reference(ctx, signal, score, rows["answer_type"].mode().iloc[0])
    scale = choices.load("trust.scale", ctx.config.trust_scale)()
    placement = scale.place(valued.values, ctx.config.trust, ctx.memo["judge_reference"])
    return pd.Series(np.asarray(placement.degree, dtype=float), index=outputs.index)


def step_learn_trust(ctx: "RunContext") -> dict:
    """A learning trust signal fitted on the calibration purchase: its outputs labelled right or
    wrong by the split's gold answers, valued cross-fitted, and the model the trust steps apply."""
    config = ctx.config
    rows = ctx.run_dir.read_table(ROWS)[["id", "question", "answer_type", "gold"]]
    outputs = ctx.run_dir.read_table(bought(LABELLED_PURCHASE)).merge(rows, on="id", how="left")
    outputs["right"] = outputs["answer"].notna() & (outputs["answer"] == outputs["gold"])
    signal = _trust_signal_class(config)()
    learnt = signal.learn(outputs.reset_index(drop=True), _ta_scorer(ctx, ctx.parts(LABELLED_PARTS)),
                          _learning_tools(ctx))
    ctx.run_dir.write_table(LEARNED, learnt.model)
    labelled = outputs[["id", "k", "text", "answer", "right"]].assign(value=learnt.values)
    ctx.run_dir.write_table(LABELLED, labelled)
    return {"rows": len(labelled), "signal": config.trust.signal, "ta_scored": learnt.ta_scored, **learnt.summary,
            **({"notes": learnt.notes} if learnt.notes else {})}


@dataclass
class LearningTools:
    """What a trust signal that trains a model is handed: the TA it starts from, where its model
    goes, a fine-tuning in this process, and a scorer for any model folder."""

    ta: str
    folder: Optional[Path]  # where a signal that trains a model (the verifier) writes it; None for others
    fine_tune: Callable[[pd.DataFrame, Path], None]
    scorer_for: Callable[[str], Callable]


def _learning_tools(ctx: "RunContext") -> LearningTools:
    def fine_tune(rows: pd.DataFrame, out: Path) -> None:
        """Fine-tune the TA on rows (prompt, given, target, weight) into `out` (trust.verifier's settings)."""
        from .scratch import fine_tune_in_process

        settings = ctx.config.trust.verifier
        fine_tune_in_process(ctx, ctx.models()["ta"], rows, out, epochs=settings.epochs, batch_size=settings.batch_size,
                             lr=settings.lr, seed=ctx.config.seed, max_length=settings.max_length)

    from ..config import choices

    trains = choices.fact("trust.signal", ctx.config.trust.signal, "trains_model")
    return LearningTools(ctx.models()["ta"], ctx.run_dir.location(VERIFIER, write=True) if trains else None, fine_tune,
                         lambda path: _ta_scorer(ctx, None, path))


def _trust_signal_class(config: Config):
    from ..config import choices

    return choices.load("trust.signal", config.trust.signal)


def calibration_references(config: Config) -> pd.DataFrame:
    """Outputs known to be right (question, text): held-out gold solutions of the synthetic
    task (a generator seed of their own), or the user's trust.calibration_files."""
    if config.data.source == SYNTHETIC:
        from ..synthetic.problems import generate_problems, gold_solution

        syn = config.data.synthetic
        problems = generate_problems(config.trust.calibration_size, syn.seed + 2, syn.min_steps, syn.max_steps)
        return pd.DataFrame({"question": [p.question() for p in problems], "text": [gold_solution(p) for p in problems]})
    from ..corpus import CorpusError

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


def step_calibrate_trust(ctx: "RunContext") -> dict:
    """The TA's confidence in outputs known to be right: the scale trust is measured on, fixed
    before any purchase it is applied to."""
    references = calibration_references(ctx.config)
    references = references.assign(id=[f"cal-{i}" for i in range(len(references))], k=0)
    scored = _score(ctx, references, ctx.parts(CALIBRATION_PARTS))
    ctx.run_dir.write_table(CALIBRATION, scored[["id", "question", "text", "ta_conf"]])
    return {"rows": len(scored), "threshold": _level(scored["ta_conf"], ctx.config.trust.calibration_quantile),
            "median_ta_conf": float(scored["ta_conf"].median())}
