"""Ray Data stages that push rows through the Serve deployments.

Each is a map_batches UDF class: it opens a deployment handle once, sends each batch as
one request (Serve merges concurrent requests into one model call), and returns the
batch with the model's output columns. Ray Data streams blocks, so a pool of millions of
questions never has to fit in the driver.
"""

from __future__ import annotations

import pandas as pd
import ray
from ray import serve

from ..tasks.answers import extract_for_row
from ..tasks.prompts import student_prompt, student_target
from .deployments import SAMPLER_APP, SCORER_APP

UDF_NUM_CPUS = 0.25  # the UDF only waits on handles; the models' CPUs belong to Serve


class SampleStudent:
    """(id, question, answer_type, options) -> one row per sample: id, k, text, answer."""

    def __init__(self, answer_fallback: str = "none"):
        self.handle = serve.get_deployment_handle("StudentSampler", app_name=SAMPLER_APP)
        self.answer_fallback = answer_fallback

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        samples = self.handle.sample.remote([student_prompt(q) for q in batch["question"]]).result()
        rows = []
        for row_id, answer_type, options, texts in zip(batch["id"], batch["answer_type"], batch["options"], samples):
            for k, text in enumerate(texts):
                rows.append({"id": row_id, "k": k, "text": text, "answer": extract_for_row(text, answer_type, options, self.answer_fallback)})
        return pd.DataFrame(rows, columns=["id", "k", "text", "answer"])


class ScoreWithTA:
    """(question, text, ...) -> the same rows plus `ta_conf`, the TA's confidence in text."""

    def __init__(self):
        self.handle = serve.get_deployment_handle("TAScorer", app_name=SCORER_APP)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [student_prompt(q) for q in batch["question"]]
        targets = [student_target(t) for t in batch["text"]]
        batch = batch.copy()
        batch["ta_conf"] = self.handle.score.remote(prompts, targets).result()
        return batch


def map_with_actor(
    frame: pd.DataFrame, udf, batch_size: int, num_blocks: int = 1,
    num_cpus: float = UDF_NUM_CPUS, constructor_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Stream frame through one actor of the UDF class, batch by batch, with Ray Data."""
    ds = ray.data.from_pandas(frame).repartition(max(1, min(num_blocks, len(frame))))
    out = ds.map_batches(
        udf,
        fn_constructor_kwargs=constructor_kwargs,
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=num_cpus,
    )
    return out.to_pandas()


def sample_pool(questions: pd.DataFrame, batch_size: int, num_blocks: int = 4, answer_fallback: str = "none") -> pd.DataFrame:
    samples = map_with_actor(
        questions[["id", "question", "answer_type", "options"]], SampleStudent, batch_size, num_blocks,
        constructor_kwargs={"answer_fallback": answer_fallback},
    )
    return samples.sort_values(["id", "k"]).reset_index(drop=True)


def score_texts(rows: pd.DataFrame, batch_size: int, num_blocks: int = 4) -> pd.DataFrame:
    """rows must hold `question` and `text`; returns them with `ta_conf`."""
    return map_with_actor(rows, ScoreWithTA, batch_size, num_blocks)
