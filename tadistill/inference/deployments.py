"""Ray Serve deployments: `StudentSampler` and `TAScorer`.

A request carries a list of rows (one Ray Data batch), and `serve.batch` merges the
lists of concurrent callers into one model call. Measured on 2 CPU cores, one request per
row spent most of its time in per-request overhead (~15 rows/s against ~250 rows/s for
the same model called on batches), so rows travel in lists. Handles reach them; Serve's
HTTP proxy stays on 127.0.0.1.
"""

from __future__ import annotations

from ray import serve

from ..config import InferenceConfig
from .backend import TransformersBackend

SAMPLER_APP = "student_sampler"
SCORER_APP = "ta_scorer"
QUIET_LOGS = {"enable_access_log": False, "log_level": "WARNING"}


def _split(flat: list, lengths: list[int]) -> list[list]:
    out, start = [], 0
    for n in lengths:
        out.append(flat[start:start + n])
        start += n
    return out


@serve.deployment(logging_config=QUIET_LOGS)
class StudentSampler:
    """sample(prompts) -> num_samples completions per prompt, from the served checkpoint."""

    def __init__(self, model_path: str, num_samples: int, temperature: float, max_new_tokens: int,
                 seed: int, torch_threads: int, max_batch_size: int):
        self.backend = TransformersBackend(model_path, torch_threads=torch_threads)
        self._sample_lists.set_max_batch_size(max_batch_size)
        self.settings = dict(num_samples=num_samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)

    def model_path(self) -> str:
        return self.backend.model_path

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _sample_lists(self, prompt_lists: list[list[str]]) -> list[list[list[str]]]:
        flat = [p for prompts in prompt_lists for p in prompts]
        return _split(self.backend.generate(flat, **self.settings), [len(p) for p in prompt_lists])

    async def sample(self, prompts: list[str]) -> list[list[str]]:
        return await self._sample_lists(prompts)


@serve.deployment(logging_config=QUIET_LOGS)
class TAScorer:
    """score(prompts, outputs) -> the TA's length-normalised confidence in each output."""

    def __init__(self, model_path: str, torch_threads: int, max_batch_size: int):
        self.backend = TransformersBackend(model_path, torch_threads=torch_threads)
        self._score_lists.set_max_batch_size(max_batch_size)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _score_lists(self, requests: list[tuple[list[str], list[str]]]) -> list[list[float]]:
        prompts = [p for ps, _ in requests for p in ps]
        outputs = [o for _, os_ in requests for o in os_]
        return _split(self.backend.score(prompts, outputs), [len(ps) for ps, _ in requests])

    async def score(self, prompts: list[str], outputs: list[str]) -> list[float]:
        return await self._score_lists((list(prompts), list(outputs)))


def _options(config: InferenceConfig) -> dict:
    return {"num_replicas": config.replicas, "ray_actor_options": {"num_cpus": config.num_cpus}}


def deploy_sampler(model_path: str, config: InferenceConfig) -> None:
    """(Re)deploy the sampler on a checkpoint; a running app rolls over to the new model."""
    app = StudentSampler.options(**_options(config)).bind(
        model_path, config.num_samples, config.temperature, config.max_new_tokens, config.seed,
        config.torch_threads, config.max_batch_size,
    )
    serve.run(app, name=SAMPLER_APP, route_prefix=None)


def deploy_scorer(model_path: str, config: InferenceConfig) -> None:
    app = TAScorer.options(**_options(config)).bind(model_path, config.torch_threads, config.max_batch_size)
    serve.run(app, name=SCORER_APP, route_prefix=None)
