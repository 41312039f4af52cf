"""A model card (README.md) beside every output model: what it was distilled from, how, and how
well it does, so a folder found later explains itself."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import FINAL, requests_paid

if TYPE_CHECKING:
    from .context import RunContext


def card_text(ctx: "RunContext", model: Path) -> str:
    config = ctx.config
    steps = ctx.run_dir.manifest()["steps"]
    evaluation = steps.get("evaluate", {})
    paid = requests_paid(steps)
    train = steps.get(f"{FINAL}.train", {})
    data = config.data
    source = {"synthetic": "the embedded synthetic arithmetic task", "files": f"data files {dict(data.files)}",
              "hf": f"the Hugging Face data set {data.hf.path}" + (f" ({data.hf.name})" if data.hf.name else "")}
    accuracy = evaluation.get("accuracy")
    return "\n".join([
        f"# {model.parent.name} student distilled with tadistill (`{config.method}`)", "",
        "| | |", "|---|---|",
        f"| student (before) | `{config.models.student}` |",
        f"| teacher | {ctx.teacher.describe()} |",
        f"| teaching assistant | `{config.models.ta}` |",
        f"| data | {source.get(data.source, data.source)}; task {data.task or data.preset or 'custom'}, "
        f"pool split `{data.pool_split}` |",
        f"| method | `{config.method}` (selection `{config.selection.strategy}`"
        + (f" in {config.rounds} rounds" if config.rounds > 1 else "") + f", trust `{config.trust.mode}`) |",
        f"| teacher budget | {config.budget.requests} requests; {paid} used |",
        f"| training | {train.get('optimizer_steps', '?')} optimizer steps, {train.get('examples_seen', '?')} "
        f"examples seen, lr {config.train.lr}, {config.train.strategy} |",
        f"| test accuracy | **{accuracy:.3f}** ({evaluation.get('correct')} of {evaluation.get('total')}, "
        f"split `{data.test_split}`) |" if accuracy is not None else "| test accuracy | not evaluated |",
        "", "## Load it", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "", f'model = AutoModelForCausalLM.from_pretrained("{model}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{model}")', "```", "",
        f"Prompts follow tadistill's student prompt (`tadistill.tasks.prompts.student_prompt`). The run's "
        f"report, with every step, is `{ctx.run_dir.path / 'report.md'}`; its config is "
        f"`{ctx.run_dir.path / 'config.json'}`.", "",
    ])

