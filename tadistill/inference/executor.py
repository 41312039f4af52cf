"""Where the models answer: one executor per run, chosen once from `inference.launcher`.

Sampling the student, scoring with the TA and answering the test set all go through it, so
every model call of a run uses the configured backend, CPUs and GPUs:

- `local`: the transformers backend in the driver's process (no Serve, no Ray Data), for small
  models where a deployment's start-up costs more than the work;
- `serve`: Ray Serve deployments (`StudentSampler`, `TAScorer`) fed batches through their handles
  from the driver, several in flight, deployed for a step and taken down after it so their CPUs
  and GPUs go back to the steps that follow; a
  long-lived TA app (`inference.ta_app`) or a remote TA endpoint (`inference.ta_endpoint`) is
  used as it is and left up.

The executor is a context manager: whatever it still holds when the run ends (a step that
failed half-way, say) is taken down on exit. A new launcher is one class here, its line in the
config's choice table (config/choices.py) and its test.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import pandas as pd

from ..config import choices

if TYPE_CHECKING:
    from ..config import InferenceConfig
    from ..services import Services

log = logging.getLogger(__name__)

Parts = Optional[tuple[Path, str]]  # (folder, tag): output written block by block, resumable
ANSWER_COLUMNS = ["id", "question", "gold", "answer_type", "options"]


class Executor:
    def __init__(self, inference: "InferenceConfig", services: "Services", answer_fallback: str = "none",
                 num_blocks: int = 4):
        self.inference = inference
        self.services = services
        self.answer_fallback = answer_fallback
        self.num_blocks = num_blocks
        self._deployed: set[str] = set()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Take down whatever this executor still has deployed."""
        for app in sorted(self._deployed):
            self._undeploy(app)

    # -- what a run asks of the models ----------------------------------------------------

    def sample(self, model_path: str, questions: pd.DataFrame, parts: Parts = None) -> pd.DataFrame:
        """inference.num_samples samples per question: id, k, text, answer."""
        return self._sample(model_path, questions, self.inference, self.inference.batch_size, parts)

    def score(self, ta_path: str, rows: pd.DataFrame, parts: Parts = None,
              confidence: Optional[str] = None) -> pd.DataFrame:
        """rows (id, k, question, text) with `ta_conf`, the TA's confidence in each text, of kind
        `confidence` (modeling.CONFIDENCES; None: inference.ta_confidence)."""
        raise NotImplementedError

    def answer(self, model_path: str, test: pd.DataFrame, max_new_tokens: int, batch_size: int) -> pd.DataFrame:
        """Greedy answers to test questions: id, gold, answer_type, text, answer, correct."""
        greedy = self.inference.model_copy(update={"num_samples": 1, "temperature": 0.0,
                                                   "max_new_tokens": max_new_tokens})
        samples = self._sample(model_path, test[ANSWER_COLUMNS], greedy, batch_size, None)
        answered = test[["id", "gold", "answer_type"]].merge(samples[["id", "text", "answer"]], on="id", how="left")
        answered["correct"] = answered["answer"].notna() & (answered["answer"] == answered["gold"])
        return answered.sort_values("id").reset_index(drop=True)

    def _sample(self, model_path, questions, settings, batch_size, parts) -> pd.DataFrame:
        raise NotImplementedError

    def _undeploy(self, app: str) -> None:
        self._deployed.discard(app)


def executor_for(inference: "InferenceConfig", services: "Services", answer_fallback: str = "none",
                 num_blocks: int = 4) -> Executor:
    return choices.load("inference.launcher", inference.launcher)(inference, services, answer_fallback, num_blocks)


class LocalExecutor(Executor):
    """The transformers backend in the driver's process (the config refuses anything else for it)."""

    def _sample(self, model_path, questions, settings, batch_size, parts):
        from .drive import sample_pool

        return sample_pool(questions, batch_size, self.num_blocks, self.answer_fallback, parts=parts,
                           local_model=model_path, settings=settings)

    def score(self, ta_path, rows, parts=None, confidence=None):
        from .drive import score_texts

        return score_texts(rows, self.inference.batch_size, self.num_blocks, parts=parts, local_model=ta_path,
                           confidence=confidence or self.inference.ta_confidence,
                           chat_template=self.inference.chat_template)


class ServeExecutor(Executor):
    """Ray Serve deployments, up for the step that needs them."""

    @contextmanager
    def _app(self, app: str, deploy) -> Iterator[None]:
        self.services.serve()
        deploy()
        self._deployed.add(app)
        try:
            yield
        finally:
            self._undeploy(app)  # give its CPUs and GPUs back to the steps that follow

    def _in_flight(self) -> int:
        """Requests kept outstanding: two per replica and merge slot, so a replica always has the
        next batch waiting while it computes (bench/inference: 1 in flight ran at 0.83 of 4)."""
        inference = self.inference
        replicas = inference.autoscaling.max_replicas if inference.autoscaling else inference.replicas
        return max(4, 2 * replicas * inference.max_batch_size)

    def _undeploy(self, app: str) -> None:
        import ray
        from ray import serve

        if app in self._deployed and ray.is_initialized():
            serve.delete(app)
        super()._undeploy(app)

    def _sample(self, model_path, questions, settings, batch_size, parts):
        from .deployments import SAMPLER_APP, deploy_sampler
        from .drive import sample_pool

        with self._app(SAMPLER_APP, lambda: deploy_sampler(model_path, settings)):
            return sample_pool(questions, batch_size, self.num_blocks, self.answer_fallback, parts=parts,
                               retry_for_s=self.inference.retry_for_s, in_flight=self._in_flight())

    def score(self, ta_path, rows, parts=None, confidence=None):
        from .deployments import SCORER_APP, deploy_scorer
        from .drive import score_texts

        inference = self.inference
        score = lambda app: score_texts(rows, inference.batch_size, self.num_blocks, parts=parts,  # noqa: E731
                                        app_name=app, retry_for_s=inference.retry_for_s,
                                        confidence=confidence or inference.ta_confidence,
                                        in_flight=self._in_flight())
        if inference.ta_app:  # a long-lived scorer (a RayService): use it, leave it up
            self.services.ray()
            return score(inference.ta_app)
        with self._app(SCORER_APP, lambda: deploy_scorer(ta_path, inference)):
            return score(SCORER_APP)
