"""Pushing rows through the models, batch by batch, resumable block by block.

The Serve clients (SampleThroughServe, ScoreThroughServe) are async UDF classes: each opens a
deployment handle once and sends each batch as one request, and the driver keeps several in
flight (Serve merges concurrent requests into one model call), so the replicas never wait for
the next batch. Outputs are written block by block; a rerun maps only what has no output.

With `inference.launcher: local`, SampleStudent and ScoreWithTA hold the model themselves and
map the batches in the driver's process: no Serve, the same rows, part files and resume. For small models (a laptop, a benchmark grid) where a deployment's start-up
costs more than the work. The run reaches these through its executor (executor.py), which
owns the deployments.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray import serve

from ..retry import RetryClock
from ..tasks.answers import extract_for_row
from ..tasks.prompts import student_prompt, student_target
from .deployments import SAMPLER_APP, SCORER_APP

if TYPE_CHECKING:
    from ..config import InferenceConfig

log = logging.getLogger(__name__)

UDF_NUM_CPUS = 0.25  # the UDF only waits on handles; the models' CPUs belong to Serve
DEFAULT_RETRY_S = 300.0  # inference.retry_for_s


class InferenceError(RuntimeError):
    pass


async def call_replica(call, what: str, retry_for_s: float):
    """await call() on a Serve deployment, again while its replica is lost: a replica that dies
    takes its in-flight requests with it (Serve does not resend them), and the controller
    starts another; the batch is sent again until one answers or `retry_for_s` has passed."""
    import asyncio

    from ray.exceptions import ActorUnavailableError, RayActorError

    retry = RetryClock(retry_for_s, max_s=5.0)  # a replacement replica is seconds away
    while True:
        try:
            return await call()
        except (RayActorError, ActorUnavailableError) as exc:
            delay = retry.next_delay()
            if delay is None:
                raise InferenceError(
                    f"{what}: no replica answered for {retry_for_s:g} s (inference.retry_for_s), "
                    f"{retry.tries} tries; last error: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
            log.warning("%s: replica lost (%s); sending the batch again (try %d)", what, type(exc).__name__,
                        retry.tries + 1)
            await asyncio.sleep(delay)


def _sample_rows(batch: pd.DataFrame, samples: list[list[str]], answer_fallback: str) -> pd.DataFrame:
    rows = []
    for row_id, answer_type, options, texts in zip(batch["id"], batch["answer_type"], batch["options"], samples):
        for k, text in enumerate(texts):
            rows.append({"id": row_id, "k": k, "text": text,
                         "answer": extract_for_row(text, answer_type, options, answer_fallback)})
    return pd.DataFrame(rows, columns=["id", "k", "text", "answer"])


def _score_inputs(batch: pd.DataFrame) -> tuple[list[str], list[str]]:
    return [student_prompt(q) for q in batch["question"]], [student_target(t) for t in batch["text"]]


class SampleStudent:
    """(id, question, answer_type, options) -> one row per sample: id, k, text, answer, from the
    model at `model_path`, loaded here, sampled as `settings` (an InferenceConfig) says."""

    def __init__(self, model_path: str, settings: "InferenceConfig", answer_fallback: str = "none"):
        from .transformers_backend import TransformersBackend

        self.answer_fallback = answer_fallback
        self.backend = TransformersBackend(model_path, chat_template=settings.chat_template)
        self.settings = {"num_samples": settings.num_samples, "temperature": settings.temperature,
                         "max_new_tokens": settings.max_new_tokens, "seed": settings.seed}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        samples = self.backend.generate([student_prompt(q) for q in batch["question"]], **self.settings)
        return _sample_rows(batch, samples, self.answer_fallback)


class SampleThroughServe:
    """SampleStudent's rows from the StudentSampler deployment. Async, so the driver keeps several
    batches in flight (_through_handles) and the replica never waits for the next one."""

    def __init__(self, answer_fallback: str = "none", retry_for_s: float = DEFAULT_RETRY_S):
        self.answer_fallback = answer_fallback
        self.retry_for_s = retry_for_s
        self.handle = serve.get_deployment_handle("StudentSampler", app_name=SAMPLER_APP)

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [student_prompt(q) for q in batch["question"]]
        samples = await call_replica(lambda: self.handle.sample.remote(prompts), "StudentSampler", self.retry_for_s)
        return _sample_rows(batch, samples, self.answer_fallback)


class ScoreWithTA:
    """(question, text, ...) -> the same rows plus `ta_conf`, the TA's confidence in text,
    from the TA at `local_model`, loaded here."""

    def __init__(self, local_model: str, confidence: str = "mean", chat_template: bool = True):
        from .transformers_backend import TransformersBackend

        self.backend = TransformersBackend(local_model, chat_template=chat_template)
        self.confidence = confidence

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        scores = self.backend.score(*_score_inputs(batch), confidence=self.confidence)
        return batch.assign(ta_conf=scores)


class ScoreThroughServe:
    """ScoreWithTA's rows from a TAScorer deployment (of app `app_name`); async, like
    SampleThroughServe."""

    def __init__(self, app_name: str = SCORER_APP, retry_for_s: float = DEFAULT_RETRY_S, confidence: str = "mean"):
        self.app_name = app_name
        self.retry_for_s = retry_for_s
        self.confidence = confidence
        self.handle = serve.get_deployment_handle("TAScorer", app_name=app_name)

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts, targets = _score_inputs(batch)
        scores = await call_replica(lambda: self.handle.score.remote(prompts, targets, self.confidence),
                                    f"TAScorer of app {self.app_name!r}", self.retry_for_s)
        return batch.assign(ta_conf=scores)


def _batches(frame: pd.DataFrame, batch_size: int, what: str):
    from ..console import progress

    starts = range(0, len(frame), batch_size)
    with progress(len(starts), what, "batch", disable=len(starts) < 2) as bar:
        for start in starts:
            yield frame.iloc[start:start + batch_size].reset_index(drop=True)
            bar.update(1)


_DISPLAY_NAMES = {"SampleThroughServe": "sampling", "SampleStudent": "sampling",
                  "ScoreThroughServe": "TA scoring", "ScoreWithTA": "TA scoring"}


def _through_handles(frame: pd.DataFrame, udf, batch_size: int, constructor_kwargs: dict | None,
                     in_flight: int, write_part=None):
    """An async UDF (a Serve deployment's client) driven from this process: `in_flight` batches
    outstanding, so the replicas never wait for the next one to travel, each output handed
    to write_part as it is done (else returned, in the frame's order).

    Measured on 2 cores: the same TA scoring through Ray Data (an actor started per step,
    blocks repartitioned and collected) ran at 0.50 of direct calls; from here, handle calls
    alone ran at 1.0-1.3 of them (bench/inference)."""
    import asyncio

    from ..console import progress

    starts = list(range(0, len(frame), batch_size))

    async def run():
        mapper = udf(**(constructor_kwargs or {}))  # its handles belong to this event loop
        slots = asyncio.Semaphore(max(1, in_flight))
        outputs: dict[int, pd.DataFrame] = {}
        with progress(len(starts), _DISPLAY_NAMES.get(udf.__name__, udf.__name__), "batch",
                      disable=len(starts) < 2) as bar:
            async def one(start: int):
                async with slots:
                    out = await mapper(frame.iloc[start:start + batch_size].reset_index(drop=True))
                if write_part:
                    write_part(out)
                else:
                    outputs[start] = out
                bar.update(1)

            await asyncio.gather(*(one(start) for start in starts))
        return None if write_part else pd.concat([outputs[s] for s in starts], ignore_index=True)

    return asyncio.run(run())


def _map(frame: pd.DataFrame, udf, batch_size: int, num_blocks: int, num_cpus: float,
         constructor_kwargs: dict | None, in_process: bool, write_part=None, in_flight: int = 4):
    """Stream frame through the UDF class, batch by batch: one instance in this process
    (in_process); an async one (a deployment's client) from this process, `in_flight` batches
    at a time; or one actor of it under Ray Data. With write_part(frame), each output block is
    handed over as it is done (and None returned); else the outputs are returned."""
    import inspect

    if inspect.iscoroutinefunction(getattr(udf, "__call__", None)):
        return _through_handles(frame, udf, batch_size, constructor_kwargs, in_flight, write_part)
    if in_process:
        mapper = udf(**(constructor_kwargs or {}))
        outputs = []
        for batch in _batches(frame, batch_size, _DISPLAY_NAMES.get(udf.__name__, udf.__name__)):
            out = mapper(batch)
            if write_part:
                write_part(out)
            else:
                outputs.append(out)
        return None if write_part else pd.concat(outputs, ignore_index=True)
    ds = ray.data.from_pandas(frame).repartition(max(1, min(num_blocks, len(frame))))
    out = ds.map_batches(udf, fn_constructor_kwargs=constructor_kwargs, batch_size=batch_size, batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(size=1), num_cpus=num_cpus)
    return out.to_pandas() if write_part is None else write_part(out)


def map_with_actor(
    frame: pd.DataFrame, udf, batch_size: int, num_blocks: int = 1,
    num_cpus: float = UDF_NUM_CPUS, constructor_kwargs: dict | None = None, in_process: bool = False,
    in_flight: int = 4,
) -> pd.DataFrame:
    """Stream frame through one actor of the UDF class, batch by batch, with Ray Data
    (or, in_process, through one instance of it in this process; an async UDF from this
    process, in_flight batches at a time)."""
    return _map(frame, udf, batch_size, num_blocks, num_cpus, constructor_kwargs, in_process, in_flight=in_flight)


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
    num_cpus: float = UDF_NUM_CPUS, constructor_kwargs: dict | None = None, in_process: bool = False,
    in_flight: int = 4,
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
        _map(todo, udf, batch_size, num_blocks, num_cpus, constructor_kwargs, in_process,
             write_part=lambda out: _write_part(out, folder), in_flight=in_flight)
    return read_parts(folder)


def _write_part(out, folder: Path) -> None:
    """An output block (a frame in this process, or a Ray Dataset) into folder, never torn."""
    if isinstance(out, pd.DataFrame):
        # Written whole under a temporary name, so a crash never leaves a torn part.
        part = folder / f"local-{uuid.uuid4().hex}.parquet"
        pq.write_table(pa.Table.from_pandas(out, preserve_index=False), part.with_suffix(".tmp"))
        part.with_suffix(".tmp").rename(part)
    else:
        out.write_parquet(str(folder))


def sample_pool(questions: pd.DataFrame, batch_size: int, num_blocks: int = 4, answer_fallback: str = "none",
                parts: tuple[Path, str] | None = None, local_model: str | None = None,
                settings: "InferenceConfig | None" = None, retry_for_s: float = DEFAULT_RETRY_S,
                in_flight: int = 4) -> pd.DataFrame:
    """N samples per question; with parts=(folder, tag), written block by block and resumable.

    local_model: sample that model in this process, as `settings` says (see SampleStudent),
    instead of through the deployment.
    """
    rows = questions[["id", "question", "answer_type", "options"]]
    if local_model:
        udf, kwargs = SampleStudent, {"model_path": local_model, "settings": settings, "answer_fallback": answer_fallback}
    else:
        udf, kwargs = SampleThroughServe, {"answer_fallback": answer_fallback, "retry_for_s": retry_for_s}
    options = {"constructor_kwargs": kwargs, "in_process": bool(local_model), "in_flight": in_flight}
    if parts:
        samples = map_to_parts(rows, udf, parts[0], parts[1], ["id"], batch_size, num_blocks, **options)
    else:
        samples = map_with_actor(rows, udf, batch_size, num_blocks, **options)
    return samples.sort_values(["id", "k"]).reset_index(drop=True)


def score_texts(rows: pd.DataFrame, batch_size: int, num_blocks: int = 4,
                parts: tuple[Path, str] | None = None, local_model: str | None = None,
                app_name: str = SCORER_APP, retry_for_s: float = DEFAULT_RETRY_S,
                confidence: str = "mean", in_flight: int = 4, chat_template: bool = True) -> pd.DataFrame:
    """rows must hold id, k, `question` and `text`; returns them with `ta_conf` (of kind `confidence`).

    With parts=(folder, tag), scores are written block by block and a rerun resumes.
    local_model: score with that TA in this process instead of through the deployment;
    app_name: the Serve app whose TAScorer scores; retry_for_s: how long a batch is sent again
    while its replica is lost (see call_replica).
    """
    if local_model:
        udf, kwargs = ScoreWithTA, {"local_model": local_model, "confidence": confidence,
                                    "chat_template": chat_template}
    else:
        udf, kwargs = ScoreThroughServe, {"app_name": app_name, "retry_for_s": retry_for_s, "confidence": confidence}
    options = {"constructor_kwargs": kwargs, "in_process": bool(local_model), "in_flight": in_flight}
    if parts:
        return map_to_parts(rows, udf, parts[0], parts[1], ["id", "k"], batch_size, num_blocks, **options)
    return map_with_actor(rows, udf, batch_size, num_blocks, **options)
