"""Ray Serve deployments: `StudentSampler` and `TAScorer`.

A request carries a list of rows (one batch), and `serve.batch` merges the
lists of concurrent callers into one model call. Measured on 2 CPU cores, one request per
row spent most of its time in per-request overhead (~15 rows/s against ~250 rows/s for
the same model called on batches), so rows travel in lists. Handles reach them; Serve's
HTTP proxy stays on 127.0.0.1.
"""

from __future__ import annotations


from starlette.requests import Request
from starlette.responses import JSONResponse
from ray import serve

from ..config import InferenceConfig
from ..modeling import CONFIDENCES
from .backends import BackendSpec, TAEndpoint

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

    def __init__(self, num_samples: int, temperature: float, max_new_tokens: int,
                 seed: int, torch_threads: int, max_batch_size: int, backend: "BackendSpec"):
        self.backend = None
        self._torch_threads, self._backend_spec = torch_threads, backend
        self._sample_lists.set_max_batch_size(max_batch_size)
        self.settings = dict(num_samples=num_samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)

    def reconfigure(self, user_config: dict) -> None:
        """Serve the checkpoint in user_config['model_path'] (Serve calls this on deploy and
        whenever the user_config changes): after a round's training the sampler app serves the new
        checkpoint without a restart of Serve or the cluster."""
        path = user_config["model_path"]
        if self.backend is None or self.backend.model_path != path:
            self.backend = self._backend_spec.build(path, self._torch_threads)

    def model_path(self) -> str:
        return self.backend.model_path

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _sample_lists(self, prompt_lists: list[list[str]]) -> list[list[list[str]]]:
        flat = [p for prompts in prompt_lists for p in prompts]
        return _split(self.backend.generate(flat, **self.settings), [len(p) for p in prompt_lists])

    async def sample(self, prompts: list[str]) -> list[list[str]]:
        return await self._sample_lists(prompts)

    async def __call__(self, request: Request):
        """HTTP: POST {"prompts": [...]} -> {"samples": [[...], ...]} (an app with a route)."""
        body, error = await _json_lists(request, ("prompts",))
        return error or {"samples": await self.sample(body["prompts"])}


@serve.deployment(logging_config=QUIET_LOGS)
class TAScorer:
    """score(prompts, outputs, confidence) -> the TA's confidence in each output ('mean' or 'min',
    modeling.confidence_of)."""

    def __init__(self, model_path: str, torch_threads: int, max_batch_size: int, backend: "BackendSpec"):
        self.backend = backend.build(model_path, torch_threads)
        self._score_lists.set_max_batch_size(max_batch_size)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _score_lists(self, requests: list[tuple[list[str], list[str], str]]) -> list[list[float]]:
        results: list = [None] * len(requests)
        for kind in {k for _, _, k in requests}:  # one model call per kind of confidence in the batch
            mine = [i for i, r in enumerate(requests) if r[2] == kind]
            prompts = [p for i in mine for p in requests[i][0]]
            outputs = [o for i in mine for o in requests[i][1]]
            scores = _split(self.backend.score(prompts, outputs, confidence=kind), [len(requests[i][0]) for i in mine])
            for i, part in zip(mine, scores):
                results[i] = part
        return results

    async def score(self, prompts: list[str], outputs: list[str], confidence: str = "mean") -> list[float]:
        return await self._score_lists((list(prompts), list(outputs), confidence))

    async def __call__(self, request: Request):
        """HTTP: POST {"prompts": [...], "outputs": [...], "confidence": "mean"|"min"} -> {"scores": [...]}."""
        body, error = await _json_lists(request, ("prompts", "outputs"))
        if not error and len(body["prompts"]) != len(body["outputs"]):
            error = _bad_request(f"{len(body['prompts'])} prompts but {len(body['outputs'])} outputs")
        confidence = body.get("confidence", "mean") if not error else "mean"
        if not error and confidence not in CONFIDENCES:
            error = _bad_request(f"confidence must be one of {', '.join(CONFIDENCES)}, got {confidence!r}")
        return error or {"scores": await self.score(body["prompts"], body["outputs"], confidence)}


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _json_lists(request: Request, keys: tuple[str, ...]) -> tuple[dict, JSONResponse | None]:
    """The request's JSON body, or a 400 that names the key that is not a list of strings."""
    try:
        body = await request.json()
    except ValueError as exc:
        return {}, _bad_request(f"the body is not JSON: {exc}")
    for key in keys:
        if not isinstance(body, dict) or not isinstance(body.get(key), list) or \
                not all(isinstance(x, str) for x in body[key]):
            return {}, _bad_request(f"'{key}' must be a list of strings")
    return body, None


def _options(config: InferenceConfig) -> dict:
    actor = {"num_cpus": config.num_cpus}
    if config.num_gpus:
        actor["num_gpus"] = config.num_gpus
    options = {"ray_actor_options": actor}
    if config.max_replicas_per_node:
        options["max_replicas_per_node"] = config.max_replicas_per_node
    if config.autoscaling:
        return {**options, "autoscaling_config": config.autoscaling.model_dump()}
    return {**options, "num_replicas": config.replicas}


def sampler_app(model_path: str, config: InferenceConfig):
    return StudentSampler.options(**_options(config), user_config={"model_path": model_path}).bind(
        config.num_samples, config.temperature, config.max_new_tokens, config.seed,
        config.torch_threads, config.max_batch_size, BackendSpec.of(config),
    )


def scorer_app(model_path: str, config: InferenceConfig):
    settings = BackendSpec.of(config)
    if config.ta_endpoint:  # the TA runs elsewhere: the replica only tokenizes and asks it
        settings.endpoint = TAEndpoint(base_url=config.ta_endpoint, model=config.ta_endpoint_model,
                                       api_key_env=config.ta_endpoint_api_key_env)
    return TAScorer.options(**_options(config)).bind(model_path, config.torch_threads, config.max_batch_size, settings)


def deploy_sampler(model_path: str, config: InferenceConfig) -> None:
    """Deploy the sampler on a checkpoint; a running sampler reloads the new one in place."""
    serve.run(sampler_app(model_path, config), name=SAMPLER_APP, route_prefix=None)


def deploy_scorer(model_path: str, config: InferenceConfig) -> None:
    serve.run(scorer_app(model_path, config), name=SCORER_APP, route_prefix=None)
