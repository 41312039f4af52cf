"""Students a step trains for itself and throws away (a regime test's probe students, a
committee's members), and how a step fine-tunes a model in its own process (those, and the
verifier trust signal's TA)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pandas as pd

if TYPE_CHECKING:
    from ..config import Config
    from ..context import RunContext


@contextmanager
def scratch_folder(ctx: "RunContext", prefix: str) -> Iterator[Path]:
    """A folder in the run directory for the step's throwaway students, gone when the step is."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=ctx.run_dir.path))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bought_rows(ctx: "RunContext", outputs: pd.DataFrame) -> pd.DataFrame:
    """What was bought so far as a throwaway student learns it: training rows, weighted by trust
    where the table carries weights (a trust table), in full where it does not (a purchase)."""
    from .train import training_rows

    return training_rows(ctx, outputs, outputs["weight"] if "weight" in outputs.columns else None)


def round_student_settings(config: "Config", seed: int) -> dict:
    """fine_tune_in_process's settings for a throwaway student: the round students' own."""
    return {"epochs": config.train.epochs, "batch_size": config.train.global_batch_size, "lr": config.train.lr,
            "seed": seed, "max_length": config.train.max_length}


def fine_tune_in_process(ctx: "RunContext", start: str, rows: pd.DataFrame, out: Path, **settings) -> None:
    """A model fine-tuned from `start` on rows (prompt, target, weight, given) in this process,
    saved with its tokenizer into `out` (train/loop.py fit_local's settings)."""
    from ..modeling import load_model, load_tokenizer
    from ..train.loop import fit_local

    model, tokenizer = load_model(start), load_tokenizer(start, ctx.config.inference.chat_template)
    fit_local(model, tokenizer, rows.to_dict(orient="records"), **settings)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
