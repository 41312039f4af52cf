"""A simulated imperfect teacher behind an OpenAI-compatible chat-completions endpoint.

It solves the synthetic language exactly, then, for a configured share of questions
(decided by a hash of the question and a seed, so the same request always gets the same
answer; larger on problems with more steps when the profile has a difficulty slope),
answers with a plausible wrong chain of thought: a slipped step carried through to the
end, or a correct chain with a wrong final answer. It runs on Ray Serve bound to
127.0.0.1 and is reached through the `openai` client exactly as a real teacher would be.
"""


import hashlib
import json
import logging
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from ray import serve

from ..tasks.tokens import word_tokens
from .problems import MAX_NUMBER, Problem, UnparseableQuestion, parse_question, problem_id, render_solution

log = logging.getLogger(__name__)

TEACHER_APP = "synthetic_teacher"
TEACHER_ROUTE = "/teacher"


def _unit_hash(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _shift(value: int, u: float) -> int:
    """A nearby wrong number (off by 1-3), kept inside the language's number range."""
    delta = 1 + int(u * 3) % 3
    up, down = value + delta, value - delta
    if down < 0:
        return up
    if up > MAX_NUMBER:
        return down
    return up if int(u * 1000) % 2 == 0 else down


@dataclass(frozen=True)
class TeacherProfile:
    """How the simulated teacher errs: its world's knobs (teacher.synthetic in the config).

    error_rate is the mean over the world's problems, whose step counts the generator draws
    uniformly from min_steps..max_steps. The error of a k-step problem is proportional to
    exp(difficulty_slope * k): 0 gives every problem the same error (the legacy world); 0.28
    is the slope measured on real teachers (GPT-3 on GSM8K: error 0.26 at 2 steps to 0.77 at 6;
    PaLM on SVAMP: 0.21 at one operation, 0.28 at two). slip_share of the wrong outputs are a
    slipped step carried through the chain; the rest are a right chain with a wrong last number.
    """

    error_rate: float
    seed: int
    difficulty_slope: float = 0.0
    slip_share: float = 0.5
    min_steps: int = 2
    max_steps: int = 4

    def error_for(self, steps: int) -> float:
        """The chance that the teacher gets a problem of this many steps wrong."""
        if self.difficulty_slope == 0 or self.error_rate == 0:
            return self.error_rate
        counts = range(self.min_steps, self.max_steps + 1)
        mean = sum(math.exp(self.difficulty_slope * k) for k in counts) / len(counts)
        return min(0.95, self.error_rate * math.exp(self.difficulty_slope * steps) / mean)

    @classmethod
    def from_config(cls, teacher, data) -> "TeacherProfile":
        """The profile the config names (teacher.synthetic, over data.synthetic's step range)."""
        return cls(teacher.error_rate, teacher.seed, teacher.difficulty_slope, teacher.slip_share,
                   data.min_steps, data.max_steps)


def teacher_solution(problem: Problem, profile: TeacherProfile) -> tuple[str, bool]:
    """The teacher's chain of thought for a problem and whether it is correct."""
    question, seed = problem.question(), profile.seed
    results = problem.values
    if _unit_hash(question, seed, "wrong") >= profile.error_for(len(problem.steps)):
        return render_solution(problem.start, problem.steps, results, results[-1]), True
    u = _unit_hash(question, seed, "how")
    if u < profile.slip_share:
        # A slipped step: one result is off and the chain carries the error forward.
        slip_at = int(_unit_hash(question, seed, "where") * len(results))
        slipped = list(results)
        slipped[slip_at] = _shift(results[slip_at], u / profile.slip_share)
        for i in range(slip_at + 1, len(slipped)):
            step = problem.steps[i]
            slipped[i] = slipped[i - 1] + step.amount if step.op == "+" else slipped[i - 1] - step.amount
        if all(0 <= v <= MAX_NUMBER for v in slipped) and slipped[-1] != results[-1]:
            return render_solution(problem.start, problem.steps, slipped, slipped[-1]), False
    # A right chain with a wrong final answer (also where a slip would leave the number range).
    wrong = _shift(results[-1], u)
    return render_solution(problem.start, problem.steps, results, wrong), False


def write_teacher_records(problems: list[Problem], profile: TeacherProfile, path: Path) -> Path:
    """The simulated teacher's outputs for problems, as a recorded-teacher JSONL file
    (id, question, rationale): the same texts the endpoint would send, without the endpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # This process's own temporary file, then an atomic replace: two processes writing the same
    # record (two benchmark processes starting a new cell) never interleave, and both get it whole.
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        for problem in problems:
            text, _ = teacher_solution(problem, profile)
            out.write(json.dumps({"id": problem_id(problem), "question": problem.question(), "rationale": text}) + "\n")
    os.replace(tmp, path)
    return path


fastapi_app = FastAPI(title="tadistill simulated teacher")


# Each request is a few hundred microseconds of CPU: one replica takes as many at once as a
# purchase sends. With Serve's default of 5 the proxy queued the rest and, on a busy machine,
# its queue-length probes timed out and backed off for seconds at a time (6.5 requests/s
# measured over 1,000 requests on 2 cores).
@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256,
                  logging_config={"enable_access_log": False})
@serve.ingress(fastapi_app)
class SyntheticTeacher:
    """OpenAI chat-completions over the synthetic solver, one profile per model name (several
    simulated teachers, a cheap one and an expensive one say, on one endpoint); counts the
    requests it served, per model."""

    def __init__(self, profiles: dict[str, TeacherProfile]):
        self.profiles = dict(profiles)
        self.served = {model: 0 for model in self.profiles}

    @fastapi_app.get("/v1/models")
    def models(self) -> dict:
        return {"object": "list",
                "data": [{"id": model, "object": "model", "owned_by": "tadistill"} for model in self.profiles]}

    @fastapi_app.get("/stats")
    def stats(self) -> dict:
        return {"served": sum(self.served.values()), "by_model": self.served}

    @fastapi_app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> dict:
        body = await request.json()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPException(status_code=400, detail="'messages' must be a non-empty list")
        model = body.get("model")
        if model not in self.profiles:
            serving = ", ".join(repr(m) for m in self.profiles)
            raise HTTPException(status_code=404, detail=f"model {model!r} not found; serving {serving}")
        self.served[model] += 1
        question = str(messages[-1].get("content", ""))
        try:
            text, _ = teacher_solution(parse_question(question), self.profiles[model])
        except UnparseableQuestion:
            text = "I cannot solve this problem."
        prompt_tokens = sum(word_tokens(str(m.get("content", ""))) for m in messages)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": word_tokens(text),
                "total_tokens": prompt_tokens + word_tokens(text),
            },
        }


def start_teacher(model: str, profile: TeacherProfile, port: int, host: str = "127.0.0.1") -> str:
    """Deploy the simulated teacher on Serve (HTTP on host:port); return its OpenAI base_url."""
    return start_teachers({model: profile}, port, host)


def start_teachers(profiles: dict[str, TeacherProfile], port: int, host: str = "127.0.0.1") -> str:
    """Deploy simulated teachers, one per model name, on one Serve endpoint (HTTP on host:port);
    return its OpenAI base_url."""
    from ..services import serve_http_port

    actual = serve_http_port(host, port)
    if actual != port:
        log.warning("Serve was already running with HTTP on port %d; the teacher is served there, not on %d", actual, port)
        port = actual
    serve.run(
        SyntheticTeacher.bind(profiles), name=TEACHER_APP, route_prefix=TEACHER_ROUTE
    )
    base_url = f"http://127.0.0.1:{port}{TEACHER_ROUTE}/v1"
    _wait_until_reachable(f"{base_url}/models")
    return base_url


def _wait_until_reachable(url: str, timeout_s: float = 60.0) -> None:
    """serve.run returns when the replica is up; the HTTP proxy may still be starting."""
    import urllib.error
    import urllib.request

    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.time() > deadline:
                raise RuntimeError(f"the simulated teacher at {url} did not answer within {timeout_s:.0f}s: {exc}") from exc
        time.sleep(0.25)
