"""The run's report: Markdown with tables and plots a person can read.

Where the corpus has gold answers for the pool (the synthetic task does), the report
also shows how good the teacher was and how well the TA told its wrong outputs from its
right ones. The method itself never reads pool gold; only this diagnosis does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from .artifacts import (BOUGHT, FIGURES, FINAL, LEARNED, METRICS, MODEL, OFFERS, REPORT, ROWS, SIGNALS, SUMMARY, TRUSTED,
                        Artifact, Document, Folder, model, model_card, purchase_step, round_name)
from .tables import auroc, markdown_table

if TYPE_CHECKING:
    from .context import RunContext
    from .plan import Plan


@dataclass(frozen=True)
class ReportInputs:
    """What the report shows, as the plan made it (plan._report_step declares each as a read)."""

    purchases: tuple[tuple[str, Artifact, Optional[Artifact]], ...]  # (purchase, bought, a cascade's offers)
    signals: tuple[Artifact, ...]  # each round's question signals, where the rule reads signals
    trust: Optional[Artifact]  # the trust table the final student learns from (None: as bought)
    learnt: Optional[Artifact]  # a learning trust signal's fitted model
    metrics: tuple[Document, ...]  # each trained student's metrics, in training order
    final_model: Optional[Folder]  # the final student (None for `base`)

    @classmethod
    def of(cls, steps: "Plan", uses_signals: bool) -> "ReportInputs":
        offers = {a.of: a for a in steps.written(OFFERS)}
        final = steps.final_source()
        return cls(purchases=tuple((a.of, a, offers.get(a.of)) for a in steps.written(BOUGHT)),
                   signals=tuple(steps.written(SIGNALS)) if uses_signals else (),
                   trust=final if final is not None and final.kind == TRUSTED else None,
                   learnt=LEARNED if str(LEARNED) in steps.producer else None,
                   metrics=tuple(steps.written(METRICS)),
                   final_model=model(FINAL) if model(FINAL) in steps.written(MODEL) else None)

    def reads(self) -> tuple:
        """Every artifact the report reads, for its declaration."""
        optional = (self.trust, self.learnt, self.final_model)
        return (tuple(table for _, bought, offers in self.purchases for table in (bought, offers) if table is not None)
                + self.signals + self.metrics + tuple(a for a in optional if a is not None))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _stage_metrics(ctx: "RunContext", metrics: tuple[Document, ...]) -> dict[str, dict]:
    return {doc.of: json.loads(ctx.run_dir.read_text(doc)) for doc in metrics if ctx.run_dir.location(doc).exists()}


def _plot_curves(stages: dict[str, dict], key: str, ylabel: str, out: Path) -> Optional[str]:
    """One line per stage, the stages end to end along the optimizer steps."""
    plt = _pyplot()
    if not any(m.get(key) for m in stages.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    offset = 0
    for stage, metrics in stages.items():
        values = metrics.get(key, [])
        ax.plot(range(offset + 1, offset + len(values) + 1), values, label=stage)
        offset += len(values)
    return _save(fig, ax, out, "optimizer step", ylabel)


def _training_section(ctx: "RunContext", figures: Path, trained: tuple[Document, ...],
                      facts: Optional[dict] = None) -> list[str]:
    stages = _stage_metrics(ctx, trained)
    if not stages:
        return []
    table = pd.DataFrame([{
        "stage": stage, "engine": m.get("strategy", ""), "workers": m.get("workers", ""), "rows": m.get("rows", ""),
        "steps": m.get("steps", len(m.get("step_losses", []))), "final loss": m.get("final_loss"),
        "tokens/s": m.get("tokens_per_s"), "last lr": (m.get("step_lrs") or [None])[-1],
        "seconds": m.get("seconds"), "resumed at step": ", ".join(map(str, m.get("resumed_at", []))) or "-",
    } for stage, m in stages.items()])
    lines = ["## Training", "", markdown_table(table), ""]
    lines += _final_pick_lines(stages.get(FINAL, {}), facts if facts is not None else {}, ctx.config)
    for key, label, name in (("step_losses", "weighted loss (all workers)", "loss.png"),
                             ("step_lrs", "learning rate", "lr.png")):
        figure = _plot_curves(stages, key, label, figures / name)
        if figure:
            lines += [f"![{label}]({figures.name}/{figure})", ""]
    return lines


def _final_pick_lines(metrics: dict, facts: dict, config) -> list[str]:
    """train.final_pick 'best_on_probe': which weights the final student is, in one sentence; said
    plainly where none of the trained candidates answered the probe better than the start, and
    where the default could not check it at all."""
    from .train.averaging import START

    measured = metrics.get("probe_accuracy")
    if metrics and config.train.final_pick == "auto" and not config.checks_start_share:
        why = (f"train.start_weight_share {config.train.start_weight_share} fixes its weights"
               if config.train.start_weight_share != 0 else
               "the run has no labelled probe (trust.calibration_files gives it one)")
        return [f"The final student was not checked against the student it started from: {why}; it may answer "
                "worse than where it began.", ""]
    if not measured or "final_pick" not in metrics:
        return []
    chosen, start = metrics["final_pick"], measured[START]
    best_trained = max(a for name, a in measured.items() if name != START)
    facts.update({"final_pick": chosen, "final_pick_probe_accuracy": measured[chosen], "start_probe_accuracy": start})
    on = (f"the best of {len(measured)} candidates on {metrics.get('probe_questions', '?')} labelled probe questions "
          f"(train.final_pick `{config.train.final_pick}`)")
    if chosen == START:
        return [f"Distillation did not help on this data: the final student is the starting student (probe accuracy "
                f"{_fmt(start)} vs {_fmt(best_trained)} for the best trained candidate), {on}.", ""]
    return [f"The final student is `{chosen}` ({_candidate_words(chosen)}), {on}: probe accuracy "
            f"{_fmt(measured[chosen])}, against {_fmt(start)} for the starting student.", ""]


def _candidate_words(name: str) -> str:
    """'step_0000016@0.25' in words: the checkpoint at optimizer step 16 averaged with the start at share 0.25."""
    checkpoint, _, share = name.partition("@")
    words = ("the training's last weights" if checkpoint == "last"
             else f"the checkpoint at optimizer step {int(checkpoint.split('_')[1])}")
    return words + (f", averaged with the starting student at share {share}" if share else "")


def _plot_trust(weighted: pd.DataFrame, out: Path) -> Optional[str]:
    plt = _pyplot()
    if "teacher_correct" not in weighted or weighted["trust_value"].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    finite = weighted["trust_value"].dropna()
    low, high = (0.0, 1.0) if finite.between(0, 1).all() else (float(finite.min()), float(finite.max()) + 1e-9)
    bins = np.linspace(low, high, 26)
    for correct, label in ((True, "teacher right"), (False, "teacher wrong")):
        values = weighted.loc[weighted["teacher_correct"] == correct, "trust_value"]
        ax.hist(values, bins=bins, alpha=0.6, label=f"{label} ({len(values)})")
    return _save(fig, ax, out, "trust signal of the teacher's output", "outputs")


def _save(fig, ax, out: Path, xlabel: str, ylabel: str) -> str:
    plt = _pyplot()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out.name


def _teacher_section(ctx: "RunContext", shown: ReportInputs, gold: pd.Series, facts: dict) -> list[str]:
    lines = ["## Teacher", ""]
    parts = []
    for purchase, artifact, _ in shown.purchases:
        stage = purchase_step(purchase)
        if ctx.run_dir.has(artifact) and ctx.run_dir.finished(stage, ctx.fingerprints.get(stage, "")):
            frame = ctx.run_dir.read_table(artifact)
            frame["teacher_correct"] = frame["answer"].notna() & (frame["answer"] == frame["id"].map(gold))
            requests = ctx.run_dir.manifest()["steps"].get(stage, {}).get("rows", frame["id"].nunique())
            parts.append({  # requests: a cascade pays more than one for a question it escalates
                "purchase": stage, "requests used": int(requests), "outputs": len(frame),
                "teacher accuracy vs gold": frame["teacher_correct"].mean() if len(frame) else float("nan"),
                "unextractable": int(frame["answer"].isna().sum()),
                "completion tokens": int(frame["completion_tokens"].sum()),
            })
    if parts:
        lines += [markdown_table(pd.DataFrame(parts)), ""]
    lines += _teachers_lines(ctx, shown, gold, facts)
    bought_requests = sum(p["requests used"] for p in parts)
    # Sent and never answered (timed out, cut off, in flight at a stop): maybe paid, so charged.
    unanswered = sum(t.maybe_paid().requests for t in ctx.teachers)
    facts["requests_used"] = bought_requests + unanswered
    facts["requests_unanswered_maybe_paid"] = unanswered
    facts["requests_sent_this_invocation"] = ctx.teacher_sent
    if parts:
        facts["teacher_accuracy_bought"] = float(np.average([p["teacher accuracy vs gold"] for p in parts],
                                                            weights=[p["outputs"] for p in parts]))
    maybe = (f" ({bought_requests} answered, {unanswered} sent and never answered, which may have been paid)"
             if unanswered else "")
    lines += [
        f"Requests used by this run: **{bought_requests + unanswered}**{maybe} of a budget of "
        f"{ctx.config.budget.requests}. Requests sent to the teacher in this invocation: "
        f"**{ctx.teacher_sent}** ({ctx.teacher.provenance}).",
        "",
    ]
    return lines + _batch_lines(ctx, shown)


def _batch_lines(ctx: "RunContext", shown: ReportInputs) -> list[str]:
    """teacher.batch: per purchase, its Batch API jobs, their status history, their cost at the
    batch price and what the same answers would have cost one request at a time."""
    steps = ctx.run_dir.manifest()["steps"]
    rows = []
    for purchase, _, _ in shown.purchases:
        for job in steps.get(purchase_step(purchase), {}).get("batch", {}).get("batches", []):
            rows.append({"purchase": purchase, "batch": job["batch_id"], "requests": job["requests"],
                         "answered": job["answered"], "failed": job["failed"],
                         "status history": " -> ".join(h["status"] for h in job["history"]),
                         "cost": f"{job['cost']:.4f}", "one by one": f"{job['sync_cost']:.4f}"})
    if not rows:
        return []
    cost = sum(float(r["cost"]) for r in rows)
    sync = sum(float(r["one by one"]) for r in rows)
    return ["Bought through the Batch API (teacher.batch): "
            f"{cost:.4f} against {sync:.4f} one request at a time.", "", markdown_table(pd.DataFrame(rows)), ""]


def _teachers_lines(ctx: "RunContext", shown: ReportInputs, gold: pd.Series, facts: dict) -> list[str]:
    """With several teachers: per teacher, what it was asked, how often the cascade escalated past
    it, whose outputs were kept, its cost, and its accuracy against gold where gold exists."""
    if not ctx.config.teachers:
        return []
    steps = ctx.run_dir.manifest()["steps"]
    table: dict[str, dict] = {}
    for purchase, bought, offers in shown.purchases:
        entry = steps.get(purchase_step(purchase), {})
        if offers is not None and ctx.run_dir.has(offers):
            bought_all = ctx.run_dir.read_table(offers)
        elif ctx.run_dir.has(bought):
            bought_all = ctx.run_dir.read_table(bought).assign(kept=True)
        else:
            continue
        bought_all["right"] = bought_all["answer"].notna() & (bought_all["answer"] == bought_all["id"].map(gold))
        for row in entry.get("by_teacher", []):
            mine = bought_all[bought_all["model"] == row["teacher"]]
            into = table.setdefault(row["teacher"], {"teacher": row["teacher"], "questions": 0, "escalated": 0,
                                                     "kept": 0, "cost": 0.0, "_right": 0, "_graded": 0})
            into["questions"] += row["questions"]
            into["escalated"] += row["escalated"]
            into["kept"] += int(mine.loc[mine["kept"], "id"].nunique())
            into["cost"] += row["cost"]
            graded = mine[mine["id"].map(gold).notna()]
            into["_right"] += int(graded["right"].sum())
            into["_graded"] += len(graded)
    if not table:
        return []
    rows = [{**{k: v for k, v in t.items() if not k.startswith("_")},
             "accuracy vs gold": t["_right"] / t["_graded"] if t["_graded"] else float("nan")} for t in table.values()]
    facts["teachers"] = rows
    policy = ctx.config.cascade.policy
    return [f"Teachers, cheapest first (cascade.policy `{policy}`): questions each was asked, those escalated to "
            "the next, those whose kept outputs are its own, cost, and accuracy of its outputs against gold.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def _signals_section(ctx: "RunContext", shown: ReportInputs, gold: pd.Series, figures: Path,
                     facts: dict) -> list[str]:
    lines = []
    rounds = [table.of for table in shown.signals]
    if shown.signals and all(ctx.run_dir.has(table) for table in shown.signals):
        signals = pd.concat([ctx.run_dir.read_table(table).assign(round=table.of) for table in shown.signals],
                            ignore_index=True)
        signals["student_right"] = signals["student_majority"] == signals["id"].map(gold)
        table = signals.groupby(["round", "selected"] if len(rounds) > 1 else "selected").agg(
            questions=("id", "count"),
            self_consistency=("self_consistency", "mean"),
            ta_conf_student=("ta_conf_student", "mean"),
            student_majority_right=("student_right", "mean"),
        ).reset_index()
        right, wrong = signals[signals.student_right], signals[~signals.student_right]
        facts.update({
            "selection_candidates": len(signals), "selection_picked": int(signals["selected"].sum()),
            "selection_sc_auroc": auroc(right["self_consistency"].to_numpy(), wrong["self_consistency"].to_numpy()),
            "selection_ta_auroc": auroc(right["ta_conf_student"].to_numpy(), wrong["ta_conf_student"].to_numpy()),
            "selection_student_right_on_picks": float(signals.loc[signals.selected, "student_right"].mean()),
        })
        lines += [
            "## Selection", "",
            "Selected questions should be those the round's student gets wrong (low agreement, low TA "
            "confidence)." + (f" Over {len(rounds)} rounds, each picked by the student trained on all "
                              "bought before it." if len(rounds) > 1 else ""), "", markdown_table(table), "",
            f"AUROC of self-consistency for the student's majority being right: "
            f"{_fmt(facts['selection_sc_auroc'])}; of TA confidence in the student: "
            f"{_fmt(facts['selection_ta_auroc'])}.",
            "",
        ]
    trust = shown.trust
    if trust is not None and ctx.run_dir.has(trust) and ctx.config.trusts_teacher:
        weighted = ctx.run_dir.read_table(trust)
        weighted["teacher_correct"] = weighted["answer"].notna() & (weighted["answer"] == weighted["id"].map(gold))
        right = weighted.loc[weighted.teacher_correct, "trust_value"].dropna().to_numpy()
        wrong = weighted.loc[~weighted.teacher_correct, "trust_value"].dropna().to_numpy()
        facts.update({
            "trust_ta_auroc": auroc(right, wrong),
            "trust_weight_right": float(weighted.loc[weighted.teacher_correct, "weight"].mean()),
            "trust_weight_wrong": float(weighted.loc[~weighted.teacher_correct, "weight"].mean()),
        })
        lines += [
            "## Trust in the teacher", "",
            f"Mode `{ctx.config.trust.mode}`, signal `{ctx.config.trust.signal}`. AUROC of the signal for telling "
            f"right teacher outputs from wrong ones: **{_fmt(facts['trust_ta_auroc'])}**. Mean loss weight of right outputs "
            f"{_fmt(facts['trust_weight_right'])}, of wrong ones {_fmt(facts['trust_weight_wrong'])}.", "",
        ]
        lines += _learnt_lines(ctx, shown)
        figure = _plot_trust(weighted, figures / "trust.png")
        if figure:
            lines += [f"![TA confidence in teacher outputs]({figures.name}/{figure})", ""]
    return lines


def _how_each_rule_measured(selection) -> dict[str, str]:
    """What a rule that measures reads, by its name: the name its select step files its line a round under."""
    return {
        "progress": ("Probe accuracy each length group (0: the shortest questions) gained over the student before, "
                     f"± its standard error; a group's share needs progress beyond {selection.evidence_z:g} standard "
                     "errors"),
        "regime": (f"Probe accuracy (on the labelled probe) of a student trained on what was bought before the round "
                   f"without its longest, its shortest or a random {selection.slice_share:.0%}; a slice's value is "
                   f"what leaving it out cost beyond leaving the random one out, ± its standard error, and the round "
                   f"leaves random only where a value clears {selection.evidence_z:g} standard errors"),
        "committee": (f"{selection.committee_size} students trained from the base student on bootstrap resamples of "
                      "what was bought before the round each sample every candidate; a candidate's disagreement is "
                      "the mutual information between the answer and the student who gave it (0 where all answer "
                      "alike, sure or not)"),
    }


def _progress_lines(ctx: "RunContext") -> list[str]:
    """What a rule that measures measured and decided, round by round (from the manifest)."""
    steps, selection = ctx.run_dir.manifest()["steps"], ctx.config.selection
    how = _how_each_rule_measured(selection).get(selection.strategy)
    said = [(k, steps.get(f"{round_name(k)}.select", {}).get(selection.strategy))
            for k in range(1, ctx.config.rounds + 1)]
    said = [f"- round {k}: {line}" for k, line in said if line]
    if how is None or not said:
        return []
    return ["## Why these questions were bought", "",
            f"{how}; {selection.random_floor:.0%} of each purchase is random.", "", *said, ""]


def _learnt_lines(ctx: "RunContext", shown: ReportInputs) -> list[str]:
    """A learning trust signal's fit: on what, how well (cross-fitted), and its coefficients."""
    if shown.learnt is None or not ctx.run_dir.has(shown.learnt):
        return []
    fit = ctx.run_dir.manifest()["steps"].get("trust.learn", {})
    model = ctx.run_dir.read_table(shown.learnt)
    lines = [f"The signal learnt from {fit.get('right', '?')} right and {fit.get('wrong', '?')} wrong teacher outputs "
             f"of split `{ctx.config.trust.calibration_split}` (labelled by gold, never trained on the student); "
             f"AUROC of its cross-fitted values there {_fmt(fit.get('cross_fitted_auroc'))}."]
    if "verdicts" in fit:
        right, wrong = fit["verdicts"]
        lines[0] += (f" The TA fine-tuned to end a right output with '{right}' and a wrong one with '{wrong}' "
                     f"(`trust/verifier`), its p('{right}') an output.")
        lines.append("")
    else:
        lines[0] += (f" L2 penalty {fit.get('l2', 'n/a')}. Coefficients of the standardised inputs (logs of the TA's "
                     "probabilities):")
        lines += ["", markdown_table(model[["feature", "weight"]]), ""]
    return lines + [f"Note: {note}" for note in fit.get("notes", [])] + ([""] if fit.get("notes") else [])


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def _setup_line(config, teacher: str) -> str:
    """One sentence on what was run: models, teacher, budget and how it was spent."""
    budget = f"Budget {config.budget.requests} requests"
    if config.selects:
        rounds = f" in {config.rounds} rounds" if config.rounds > 1 else ""
        budget += (f", {config.budget.warmup_share:.0%} on the random warm-up; the rest{rounds} by "
                   f"selection `{config.selection.strategy}`, trust `{config.trust.mode}`.")
    else:
        budget += ", all on a random pick (one purchase)"
        budget += f"; trust `{config.trust.mode}`." if config.trusts_teacher else "."
    return f"Student `{config.models.student}`, TA `{config.models.ta}`, teacher {teacher}. {budget}"


def write_report(ctx: "RunContext", shown: ReportInputs) -> tuple[Path, dict]:
    """report.md in the run directory, and the run's facts in numbers (summary.json, the trackers)."""
    run_path = ctx.run_dir.path
    figures = ctx.run_dir.location(FIGURES, write=True)
    figures.mkdir(exist_ok=True)
    rows = ctx.run_dir.read_table(ROWS)
    gold = rows.set_index("id")["gold"]
    evaluation = ctx.run_dir.manifest()["steps"].get("evaluate", {})
    lines = [
        f"# tadistill run: `{ctx.config.method}`", "",
        f"Run directory `{run_path}`. {_setup_line(ctx.config, ctx.teacher.describe())}", "",
        "## Result", "",
        f"Student accuracy on the held-out test split: **{_fmt(evaluation.get('accuracy'))}** "
        f"({evaluation.get('correct', 0)} of {evaluation.get('total', 0)}; "
        f"{evaluation.get('unextractable', 0)} answers could not be extracted).", "",
        "## Steps", "",
        markdown_table(pd.DataFrame([
            {"step": s["step"], "status": s["status"], "seconds": s.get("seconds", ""),
             "rows": s.get("rows", "")} for s in ctx.step_log
        ])),
        "",
    ]
    facts = {"method": ctx.config.method, "budget": ctx.config.budget.requests,
             "accuracy": evaluation.get("accuracy"), "test_questions": evaluation.get("total")}
    lines += _teacher_section(ctx, shown, gold, facts)
    lines += _signals_section(ctx, shown, gold, figures, facts)
    lines += _progress_lines(ctx)
    lines += _training_section(ctx, figures, shown.metrics, facts)
    report = ctx.run_dir.write_text(REPORT, "\n".join(lines))
    facts = {k: v for k, v in facts.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
    ctx.run_dir.write_text(SUMMARY, json.dumps(facts, indent=2) + "\n")
    return report, facts


def step_report(ctx: "RunContext", shown: ReportInputs) -> dict:
    """report.md and summary.json, the final student's model card, and the trackers' results."""
    from .model_card import card_text

    path, facts = write_report(ctx, shown)
    model = ctx.run_dir.location(shown.final_model) if shown.final_model is not None else None
    if model is not None:  # a trained student: its folder explains itself
        ctx.run_dir.write_text(model_card(shown.final_model.of), card_text(ctx, model))
    ctx.tracker.result(facts, model)
    return {"path": str(path)}
