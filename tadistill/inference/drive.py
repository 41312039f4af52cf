"""Ray Data stages that push rows through the Serve deployments.

Each is a map_batches UDF class: it opens a deployment handle once, sends each batch as
one request (Serve merges concurrent requests into one model call), and returns the
batch with the model's output columns. Ray Data streams blocks, so a pool of millions of
questions never has to fit in the driver.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray import serve

from ..tasks.answers import extract_for_row
from ..tasks.prompts import student_prompt, student_target
from .deployments import SAMPLER_APP, SCORER_APP

log = logging.getLogger(__name__)

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


TAG_FILE = "_TAG"


def read_parts(folder: Path) -> pd.DataFrame:
    """Every finished output block in folder; a file torn by a crash is deleted, to be redone."""
    frames = []
    for part in sorted(folder.glob("*.parquet")):
        try:
            frames.append(pq.read_table(part).to_pandas())
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("%s: unreadable (%s), probably torn by a crash; its rows are redone", part, exc)
            part.unlink()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def map_to_parts(
    frame: pd.DataFrame, udf, folder: Path, tag: str, key: list[str], batch_size: int, num_blocks: int = 1,
    num_cpus: float = UDF_NUM_CPUS, constructor_kwargs: dict | None = None,
) -> pd.DataFrame:
    """map_with_actor, with every output block written to `folder` as soon as it is done.

    A rerun with the same tag (the step's fingerprint) maps only the rows whose `key` has no
    output yet, so a crash loses the blocks in flight and nothing else. Another tag means
    other settings: the folder is emptied first.
    """
    marker = folder / TAG_FILE
    if folder.exists() and (not marker.exists() or marker.read_text() != tag):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(tag)
    done = read_parts(folder)
    todo = frame
    if len(done):
        finished = set(map(tuple, done[key].astype(str).to_numpy()))
        todo = frame[[tuple(r) not in finished for r in frame[key].astype(str).to_numpy()]]
        log.info("%s: %d row(s) already done, %d to go", folder, len(frame) - len(todo), len(todo))
    if len(todo):
        ds = ray.data.from_pandas(todo).repartition(max(1, min(num_blocks, len(todo))))
        ds.map_batches(
            udf, fn_constructor_kwargs=constructor_kwargs, batch_size=batch_size, batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=1), num_cpus=num_cpus,
        ).write_parquet(str(folder))
    return read_parts(folder)


def sample_pool(questions: pd.DataFrame, batch_size: int, num_blocks: int = 4, answer_fallback: str = "none",
                parts: tuple[Path, str] | None = None) -> pd.DataFrame:
    """N samples per question; with parts=(folder, tag), written block by block and resumable."""
    rows = questions[["id", "question", "answer_type", "options"]]
    kwargs = {"constructor_kwargs": {"answer_fallback": answer_fallback}}
    if parts:
        samples = map_to_parts(rows, SampleStudent, parts[0], parts[1], ["id"], batch_size, num_blocks, **kwargs)
    else:
        samples = map_with_actor(rows, SampleStudent, batch_size, num_blocks, **kwargs)
    return samples.sort_values(["id", "k"]).reset_index(drop=True)


def score_texts(rows: pd.DataFrame, batch_size: int, num_blocks: int = 4,
                parts: tuple[Path, str] | None = None) -> pd.DataFrame:
    """rows must hold id, k, `question` and `text`; returns them with `ta_conf`.

    With parts=(folder, tag), scores are written block by block and a rerun resumes.
    """
    if parts:
        return map_to_parts(rows, ScoreWithTA, parts[0], parts[1], ["id", "k"], batch_size, num_blocks)
    return map_with_actor(rows, ScoreWithTA, batch_size, num_blocks)
