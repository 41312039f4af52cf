"""What a run bought, taken out of it: `tadistill export RUN_DIR`.

The bought teacher outputs are the expensive part of a run. The export writes them, one row per
output, with what the run learned about each (the TA's confidence, the trust weight the final
student trained with, the student's signals where the output was picked by them, gold where the
corpus had it), as a Hugging Face `Dataset` folder (`save_to_disk`), as JSONL, and with a dataset
card saying where they came from. `--push-to-hub REPO` uploads the data set, and the run's final
student with its model card, through `huggingface_hub`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from .artifacts import BOUGHT, FINAL, LABELLED_PURCHASE, ROWS, SIGNALS, requests_paid, train_rows
from .config import Config
from .rundir import RunDir, RunDirError

DATASET = "dataset"  # the save_to_disk folder inside the export
JSONL = "outputs.jsonl"
CARD = "README.md"


def bought_outputs(run_dir: RunDir, config: Config) -> pd.DataFrame:
    """Every output the run bought, one row each, with its trust, signals, cost and gold."""
    from .plan import plan

    steps = plan(config)  # what the run holds: its purchases, the trust table its final student learns from
    bought_so_far = [table for table in steps.written(BOUGHT) if table.of != LABELLED_PURCHASE and run_dir.has(table)]
    if not bought_so_far:
        raise RunDirError(f"{run_dir.path}: nothing bought yet (no teacher/<purchase>.parquet); run it first")
    frames = [run_dir.read_table(table).assign(purchase=table.of) for table in bought_so_far]
    outputs = pd.concat(frames, ignore_index=True)
    trust = steps.final_source()
    if trust is not None and trust.kind != BOUGHT and run_dir.has(trust):
        weights = run_dir.read_table(trust)[["id", "k", "trust_value", "weight"]]
        outputs = outputs.merge(weights, on=["id", "k"], how="left")
    else:  # the final student learned the purchase as bought (or by gold, for the oracle)
        outputs["trust_value"] = float("nan")
        outputs["weight"] = _trained_weights(run_dir, outputs)
    rows = run_dir.read_table(ROWS).set_index("id")
    outputs["question"] = outputs["id"].map(rows["question"])
    outputs["gold"] = outputs["id"].map(rows["gold"]) if "gold" in rows else None
    outputs["correct"] = [None if g is None or g != g else bool(a == g) for a, g in zip(outputs["answer"], outputs["gold"])]
    outputs = outputs.merge(_picked_signals(run_dir, steps.written(SIGNALS)), on="id", how="left")
    outputs["cost"] = [_cost(config, m, p, c) for m, p, c in
                       zip(outputs["model"], outputs["prompt_tokens"], outputs["completion_tokens"])]
    columns = ["id", "question", "text", "answer", "gold", "correct", "model", "purchase", "prompt_tokens",
               "completion_tokens", "cost", "cached", "trust_value", "weight", "self_consistency",
               "ta_conf_student", "selection_score"]
    return outputs[columns].rename(columns={"text": "rationale", "model": "teacher", "weight": "trust_weight"})


def _trained_weights(run_dir: RunDir, outputs: pd.DataFrame) -> pd.Series:
    """Weights from the final student's training rows (0 for an output it dropped), else 1."""
    if not run_dir.has(train_rows(FINAL)):
        return pd.Series(1.0, index=outputs.index)
    kept = run_dir.read_table(train_rows(FINAL)).groupby("id")["weight"].max()
    return outputs["id"].map(kept).fillna(0.0)


def _picked_signals(run_dir: RunDir, tables: list) -> pd.DataFrame:
    """The student's signals on the questions a round picked (NaN for warm-up picks)."""
    frames = []
    for table in tables:
        if run_dir.has(table):
            signals = run_dir.read_table(table)
            frames.append(signals[signals["selected"]][["id", "self_consistency", "ta_conf_student", "score"]])
    if not frames:
        return pd.DataFrame(columns=["id", "self_consistency", "ta_conf_student", "selection_score"])
    return pd.concat(frames, ignore_index=True).rename(columns={"score": "selection_score"})


def _cost(config: Config, model: Any, prompt_tokens: Any, completion_tokens: Any) -> Optional[float]:
    price = config.budget.prices.get(str(model))
    return None if price is None else price.cost(int(prompt_tokens or 0), int(completion_tokens or 0))


def card(config: Config, run_dir: RunDir, outputs: pd.DataFrame) -> str:
    """The dataset card: where the outputs came from and what the run made of them."""
    steps = run_dir.manifest()["steps"]
    dropped = int((outputs["trust_weight"] == 0).sum())
    known = outputs["correct"].dropna()
    gold_line = (f"{int(known.sum())} of {len(known)} outputs agree with the corpus's gold answer "
                 f"({known.mean():.1%})." if len(known) else "The corpus has no gold answers for these questions.")
    teachers = ", ".join(f"`{t}` ({n})" for t, n in outputs["teacher"].value_counts().items())
    cost = outputs["cost"].dropna()
    accuracy = steps.get("evaluate", {}).get("accuracy")
    return "\n".join([
        "---", "tags: [distillation, rationales, tadistill]", "---", "",
        f"# Teacher outputs bought by a tadistill run (`{config.method}`)", "",
        "| | |", "|---|---|",
        f"| data set | {config.data.source}: task {config.data.task or config.data.preset or 'custom'}, "
        f"pool split `{config.data.pool_split}` |",
        f"| teacher | {teachers} |",
        f"| budget | {config.budget.requests} requests; {requests_paid(steps)} paid"
        + (f"; cost {cost.sum():.4f}" if len(cost) else "") + " |",
        f"| method | `{config.method}`: " + (f"selection `{config.selection.strategy}` after a random warm-up, "
                                             f"{config.rounds} round(s) |" if config.rounds
                                             else "one random purchase of the whole budget |"),
        f"| trust | mode `{config.trust.mode}`, scale `{config.trust_scale}`; {dropped} of {len(outputs)} outputs "
        f"filtered out (trust_weight 0) |",
        f"| student after distillation | test accuracy {accuracy:.3f} |" if accuracy is not None else
        "| student after distillation | not evaluated |",
        "", gold_line, "",
        "## Columns", "",
        "`question`, `rationale` (the teacher's output), `answer` (read from it), `gold` and `correct` (where the "
        "corpus had gold), `teacher`, `purchase` (`warmup` or `round<k>`), tokens and `cost` (when "
        "`budget.prices` priced the teacher), `trust_value` (the trust signal's value, "
        f"`{config.trust.signal}`; by default the TA's confidence in the output), `trust_weight` "
        "(its weight in the final student's loss; 0: filtered), and for outputs a round picked by the student's "
        "signals, `self_consistency`, `ta_conf_student` and `selection_score`.", "",
        "## Load", "", "```python", "from datasets import load_from_disk", "",
        f"outputs = load_from_disk(\"{DATASET}\")", "```", "",
    ])


def export_run(run_path: str | Path, out: Optional[str | Path] = None) -> dict:
    """Write the run's bought outputs as a Dataset folder, JSONL and a card; returns what was written."""
    import datasets

    datasets.disable_progress_bars()  # the console says one line for the export
    run_dir = _finished_run_dir(run_path)
    config = Config.model_validate_json((run_dir.path / "config.json").read_text())
    outputs = bought_outputs(run_dir, config)
    folder = Path(out) if out else run_dir.path / "export"
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_pandas(outputs, preserve_index=False).save_to_disk(str(folder / DATASET))
    with (folder / JSONL).open("w") as handle:  # missing values as null (JSON has no NaN)
        for record in outputs.astype(object).where(outputs.notna(), None).to_dict(orient="records"):
            handle.write(json.dumps(record, default=_plain) + "\n")
    (folder / CARD).write_text(card(config, run_dir, outputs))
    return {"folder": str(folder), "outputs": len(outputs), "filtered": int((outputs["trust_weight"] == 0).sum()),
            "model": str(run_dir.path / FINAL / "model") if (run_dir.path / FINAL / "model").exists() else None}


def _finished_run_dir(run_path: str | Path) -> RunDir:
    path = Path(run_path).expanduser()
    if not (path / "config.json").exists() or not (path / "manifest.json").exists():
        raise RunDirError(f"{path}: not a run directory (no config.json and manifest.json); give the run_dir of a run")
    return RunDir(path)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return None if value != value else str(value)


def push_to_hub(exported: dict, repo: str, model_repo: Optional[str] = None, private: bool = False, api=None) -> list[str]:
    """Upload the exported data set (repo) and the run's final student with its card (model_repo,
    default `<repo>-student`); the token is huggingface_hub's own (HF_TOKEN or a saved login)."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    urls = []
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    urls.append(str(api.upload_folder(folder_path=exported["folder"], repo_id=repo, repo_type="dataset",
                                      commit_message="tadistill export: bought teacher outputs")))
    if exported["model"]:
        model_repo = model_repo or f"{repo}-student"
        api.create_repo(model_repo, repo_type="model", private=private, exist_ok=True)
        urls.append(str(api.upload_folder(folder_path=exported["model"], repo_id=model_repo, repo_type="model",
                                          commit_message="tadistill export: the distilled student")))
    return urls
