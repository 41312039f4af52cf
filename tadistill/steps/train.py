"""The training steps of a run: each round's student (whose signals steer the round's purchase)
and the final student, on what plan.py says they read.

Under the fair schedule the final student, whatever the method, trains from the base student for
the same optimizer steps (Config.final_steps), so methods differ only in what they bought and how
its outputs are weighted; a round's student trains train.epochs passes over its rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable, Optional

import pandas as pd

from ..artifacts import ROWS, Artifact, Folder, model, train_rows
from ..artifacts import metrics as metrics_of

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import TrainConfig
    from ..context import RunContext


def training_rows(ctx: "RunContext", teacher: pd.DataFrame, weights: Optional[pd.Series] = None) -> pd.DataFrame:
    """(id, prompt, target, weight) per teacher output, as trust.mode weighs them (signals/trust.py:
    a weight of 0 drops the output; 'answer_weight' adds where each target's answer starts)."""
    from ..signals.trust import training_rows_for
    from ..tasks.prompts import student_prompt, student_target

    questions = ctx.run_dir.read_table(ROWS).set_index("id")["question"]
    rows = pd.DataFrame({
        "id": teacher["id"],
        "prompt": [student_prompt(questions[i]) for i in teacher["id"]],
        "target": [student_target(t) for t in teacher["text"]],
        "weight": 1.0 if weights is None else weights.to_numpy(),
    })
    return training_rows_for(rows, ctx.config.trust)


def gold_weights(ctx: "RunContext", teacher: pd.DataFrame) -> pd.Series:
    """The oracle baseline: weight 1 where the teacher's answer matches gold, 0 elsewhere."""
    gold = ctx.run_dir.read_table(ROWS).set_index("id")["gold"]
    missing = teacher["id"].map(gold).isna()
    if missing.any():
        raise ValueError(f"method 'oracle' needs gold answers in the pool split; {int(missing.sum())} bought "
                         f"questions have none (e.g. id {teacher.loc[missing, 'id'].iloc[0]!r})")
    right = teacher["answer"].notna() & (teacher["answer"] == teacher["id"].map(gold))
    return right.astype(float)


def step_train(ctx: "RunContext", stage: str, source: Artifact, init: Optional[Folder], final: bool) -> dict:
    """Train the `stage` student on the outputs in `source`, weighted by their trust where the
    table carries it (by gold for the oracle's final student), from `init` or the base student."""
    teacher = ctx.run_dir.read_table(source)
    outside = 0
    if ctx.config.train.rationales == "majority" and len(teacher):
        from ..signals.trust_signals.agreement import in_majority

        kept = in_majority(teacher).to_numpy()
        teacher, outside = teacher[kept].reset_index(drop=True), int((~kept).sum())
    if final and ctx.config.gold_weights:
        weights = gold_weights(ctx, teacher)
    else:
        weights = teacher["weight"] if "weight" in source.columns else None
    start = str(ctx.run_dir.location(init)) if init else ctx.models()["student"]
    result = _train(ctx, stage, training_rows(ctx, teacher, weights), start, final)
    return {**result, "rationales_outside_majority": outside} if ctx.config.train.rationales == "majority" else result


def _probe(ctx: "RunContext") -> tuple[pd.DataFrame, Callable[[str], float]]:
    """The labelled probe the final student is chosen on (evaluate.labelled_probe), and a model
    folder's accuracy on it."""
    from ..evaluate import labelled_probe, probe_correct

    questions = labelled_probe(ctx)
    return questions, lambda folder: float(probe_correct(ctx, questions, folder).mean()) if len(questions) else 0.0


def _checked_share(ctx: "RunContext", trained: "Path", start: str) -> dict:
    """train.start_weight_share 'auto': the share under which the final student best answers the
    run's outputs known to be right (train/averaging.py)."""
    from ..train.averaging import choose_start_share

    return choose_start_share(trained, start, *_probe(ctx))


def _best_on_probe(ctx: "RunContext", trained: "Path", start: str, train: "TrainConfig", run_folder: str) -> dict:
    """train.final_pick 'best_on_probe': of the checkpoints the training kept, each averaged with the
    start, and the start itself, the one that best answers the probe (train/averaging.py)."""
    from functools import partial

    from ..train.averaging import pick_on_probe, require_probe
    from ..train.checkpoint_weights import checkpoint_state, kept_checkpoints

    questions, accuracy_of = _probe(ctx)
    require_probe(questions, "train.final_pick 'best_on_probe'")
    kept = [(folder.name, partial(checkpoint_state, folder, train, start)) for folder in kept_checkpoints(run_folder)]
    return {"probe_questions": len(questions), **pick_on_probe(trained, start, accuracy_of, kept)}


def _train(ctx: "RunContext", stage: str, rows: pd.DataFrame, init_model: str, final: bool) -> dict:
    """Train one student. The final one, under the fair schedule, takes the same optimizer steps
    whatever the method bought or dropped (Config.final_steps)."""
    from ..train.ray_trainer import train_stage

    ctx.services.ray()
    train = ctx.config.train
    out = ctx.run_dir.location(model(stage), write=True)
    fixed = final and train.schedule == "fair"
    train = train.model_copy(update={"steps": ctx.config.final_steps() if fixed else None})
    metrics = train_stage(
        rows, init_model, train,
        storage_path=train.storage_path or str(ctx.run_dir.path / "ray_train"), name=stage,
        model_out=out, chat_template=ctx.config.inference.chat_template,
    )
    if final and ctx.config.picks_final_on_probe:
        metrics.update(_best_on_probe(ctx, out, init_model, train, metrics["ray_train_run"]))
    elif final and train.start_weight_share == "auto":
        metrics.update(_checked_share(ctx, out, init_model))
    elif final and train.start_weight_share > 0:
        from ..train.averaging import average_with_start

        metrics.update(average_with_start(out, init_model, train.start_weight_share))
    ctx.tracker.stage_curve(stage, metrics["step_losses"], metrics["step_lrs"])
    ctx.run_dir.write_table(train_rows(stage), rows)
    metrics["optimizer_steps"] = metrics["steps"]
    metrics["examples_seen"] = metrics["steps"] * train.global_batch_size
    ctx.run_dir.write_text(metrics_of(stage), json.dumps(metrics, indent=2))
    return {k: v for k, v in metrics.items() if k not in ("step_losses", "step_lrs")}
