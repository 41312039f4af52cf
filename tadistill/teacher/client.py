"""Buying teacher outputs: an asyncio client over the `openai` package.

Every request is keyed by a hash of model, messages and sampling parameters; a key whose
response is in the cache (`cache.py`) is never requested again. Before a request leaves it
reserves its worst case from the budget (`budget.py`) and passes the rate limiters (RPM
and TPM, leaky buckets from `aiolimiter`). 429s, 5xx, timeouts, dropped connections and
malformed bodies are retried with jittered exponential backoff (`retry.py`), honouring
Retry-After, for up to `teacher.retry_for_s` per request: an outage is waited out, and a
refused try costs no budget, in this invocation or the next (each try is closed in the
cache's log by what came of it). A non-retryable 4xx stops the purchase with the row and the
request id. The API key comes from an environment variable or a secret file and is never
logged, stored or put into a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from ..artifacts import TEACHER_COLUMNS
from ..config import TeacherConfig
from ..retry import RetryClock
from ..tasks.prompts import teacher_messages
from .budget import Budget, PurchaseReport
from .cache import ResponseCache

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD_TOKENS = 8  # per message: role and separators, generously


class TeacherError(RuntimeError):
    pass


class _Refused(Exception):
    """A try the teacher answered with an error, or whose connection never opened: not paid."""

    def __init__(self, failure: str, retryable: bool, server_asks: Optional[float] = None):
        super().__init__(failure)
        self.failure, self.retryable, self.server_asks = failure, retryable, server_asks


class _MaybePaid(Exception):
    """A try that left and brought back no usable answer (timed out, cut off, malformed)."""

    def __init__(self, failure: str):
        super().__init__(failure)
        self.failure = failure


def _never_left(exc: BaseException, httpx) -> bool:
    """Whether a connection error happened before the request could reach the teacher (no
    connection, or none free in the pool): then nothing can have been paid."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


# Request timeout, conflict, rate limit and server errors: worth another try. Other 4xx are not.
RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))


def retry_after(response) -> Optional[float]:
    """The server's Retry-After (seconds, or retry-after-ms) if it sent a usable one."""
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, "")) * scale
        except ValueError:  # an HTTP date, or garbage: fall back to our own backoff
            continue
        if 0 <= value <= 600:
            return value
    return None


async def _wait_to_retry(retry: RetryClock, failure: str, server_asks: Optional[float] = None,
                         gate: Optional["BudgetGate"] = None) -> None:
    """Sleep before the next try, or raise the failure once teacher.retry_for_s has passed; the
    budget (`gate`) hears of it, so the driver's console can say what is being retried."""
    if gate is not None:
        await gate.trouble(failure)
    delay = retry.next_delay(server_asks)
    if delay is None:
        raise TeacherError(f"{failure}; gave up after {retry.tries} tries in {retry.window_s:g} s "
                           "(teacher.retry_for_s)")
    waited = retry.window_s - max(0.0, retry.deadline - time.monotonic())
    log.warning("%s; retrying in %.1f s (%.0f s of teacher.retry_for_s=%g s so far)", failure, delay, waited,
                retry.window_s)
    await asyncio.sleep(delay)


def request_cost(price: Optional[tuple[float, float]], prompt_tokens: int, completion_tokens: int) -> float:
    """What a request costs at (prompt, completion) per million tokens; 0 without a price."""
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6 if price else 0.0


def request_key(model: str, messages: list[dict], params: dict) -> str:
    payload = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def request_params(config: TeacherConfig) -> dict:
    """What a request sends besides the model and messages. Options left at their defaults are
    not sent, so a request's cache key (which hashes these) stays what it was before they existed."""
    limit = "max_completion_tokens" if config.max_completion_tokens else "max_tokens"
    params = {"temperature": config.temperature, limit: config.max_tokens}
    optional = {"top_p": config.top_p, "seed": config.seed, "stop": config.stop, "n": config.n if config.n > 1 else None}
    params.update({k: v for k, v in optional.items() if v is not None})
    params.update(config.extra_body)
    return params


def prompt_token_bound(messages: list[dict]) -> int:
    """An upper bound on prompt tokens: byte-level tokenizers spend at least one byte a token."""
    return sum(len(m["content"].encode()) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def read_api_key(config: TeacherConfig) -> str:
    if config.api_key_file:
        path = Path(config.api_key_file)
        if not path.is_file():
            raise TeacherError(f"teacher.api_key_file {path} does not exist")
        key = path.read_text().strip()
        if not key:
            raise TeacherError(f"teacher.api_key_file {path} is empty")
        return key
    key = os.environ.get(config.api_key_env)
    if key:
        return key
    if config.source == "openai":
        raise TeacherError(
            f"teacher.source is 'openai' but the environment variable {config.api_key_env} "
            "(teacher.api_key_env) is not set, and no teacher.api_key_file is given"
        )
    return "no-key-needed-for-the-local-simulated-teacher"


class BudgetGate:
    """The budget seen from async code: a local Budget, or the run's named Ray actor."""

    def __init__(self, budget):
        self.budget = budget
        self.remote = not isinstance(budget, Budget)

    async def _call(self, method: str, *args):
        if self.remote:
            return await getattr(self.budget, method).remote(*args)
        return getattr(self.budget, method)(*args)

    async def reserve(self, tokens: int, cost: float, settles: bool = True) -> bool:
        """Reserve a request's worst case (`settles`: a settle or release follows; else it is
        exact). Where it does not fit only because requests in flight still hold their worst
        cases, wait for them to settle: a money or token cap is spent to its end, not refused
        early by the reservations of a concurrent purchase. False: the budget is spent."""
        while True:
            answer = await self._call("try_reserve", tokens, cost, settles)
            if answer != "wait":
                return answer == "reserved"
            await asyncio.sleep(0.05)

    async def settle(self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float) -> None:
        await self._call("settle", reserved_tokens, reserved_cost, tokens, cost)

    async def release(self, tokens: int, cost: float) -> None:
        await self._call("release", tokens, cost)

    async def obtained(self) -> None:
        await self._call("note_obtained")

    async def begin_try(self) -> bool:
        return await self._call("begin_try")

    async def end_try(self) -> None:
        await self._call("end_try")

    async def halt(self, within_s: float) -> None:
        """Stop every worker's new tries and wait (at most `within_s`) for those on the wire."""
        await self._call("halt")
        deadline = time.monotonic() + within_s
        while (await self._call("snapshot"))["sending"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def reopen(self) -> None:
        await self._call("reopen")

    async def trouble(self, failure: str) -> None:
        await self._call("note_trouble", failure)


class TeacherClient:
    """Fetches teacher outputs row by row, at most `concurrency` in flight.

    base_url may be a callable, so that a purchase answered wholly from the cache never
    starts the teacher it would otherwise need. `share` is this client's part of the
    cluster-wide concurrency and rate limits when several workers run.
    """

    def __init__(self, config: TeacherConfig, base_url: str | Callable[[], str], cache: ResponseCache,
                 system_prompt: str, price: Optional[tuple[float, float]] = None, share: float = 1.0):
        self.config = config
        self.cache = cache
        self.system_prompt = system_prompt
        self.price = price  # per million (prompt, completion) tokens
        self._api_key = read_api_key(config)  # fail before any work when the secret is missing
        self._base_url = base_url if callable(base_url) else (lambda: base_url)
        self._client = None
        self.params = request_params(config)
        self.concurrency = max(1, int(config.concurrency * share))
        self._limits = (
            config.rpm * share if config.rpm else None,
            config.tpm * share if config.tpm else None,
        )
        self._limiters = None

    def __repr__(self) -> str:  # never show the key
        return f"TeacherClient(model={self.config.model!r}, concurrency={self.concurrency})"

    def _openai(self):
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self._base_url(), api_key=self._api_key,
                # Retries are ours (`fetch`): bounded by time, so an outage is waited out.
                timeout=self.config.timeout_s, max_retries=0,
                http_client=_http_client(self.concurrency),
            )
        return self._client

    def _rate_limiters(self):
        if self._limiters is None:  # made inside the running event loop
            from aiolimiter import AsyncLimiter

            rpm, tpm = self._limits
            self._limiters = (AsyncLimiter(rpm, 60) if rpm else None, AsyncLimiter(tpm, 60) if tpm else None)
        return self._limiters

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return request_cost(self.price, prompt_tokens, completion_tokens)

    def messages(self, question: str) -> list[dict]:
        return teacher_messages(question, self.system_prompt)

    def key_for(self, question: str) -> str:
        return request_key(self.config.model, self.messages(question), self.params)

    async def _attempt(self, row_id: str, key: str, messages: list[dict]) -> dict:
        """One try of a request: its cache entry, or `_Refused` (the teacher answered with an
        error, or the connection never opened: not paid) or `_MaybePaid` (the request left and
        no usable answer came back: the provider may have charged it)."""
        import openai

        httpx = _httpx()
        body = {"model": self.config.model, "messages": messages, **self.params}
        try:
            # The client's generic POST skips the typed request transform, which costs ~3 ms
            # of CPU a request.
            raw = await self._openai().post("/chat/completions", cast_to=httpx.Response, body=body)
        except openai.APIStatusError as exc:
            request_id = exc.response.headers.get("x-request-id", "?") if exc.response is not None else "?"
            raise _Refused(f"teacher refused the request for row {row_id!r}: HTTP {exc.status_code} "
                           f"(request id {request_id}): {exc.message}", exc.status_code in RETRYABLE_STATUS,
                           retry_after(exc.response)) from None
        except openai.APIConnectionError as exc:  # timeouts and dropped connections
            failure = (f"teacher request for row {row_id!r} to {self._base_url()} failed: "
                       f"{type(exc).__name__}: {exc}")
            if _never_left(exc, httpx):
                raise _Refused(failure, True) from None
            raise _MaybePaid(failure) from None
        try:
            payload = raw.json()
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] or "" for c in choices]
            if not texts:
                raise ValueError("no choices")
            usage = payload.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:  # JSON errors are ValueErrors
            raise _MaybePaid(f"teacher sent a malformed response for row {row_id!r}: {type(exc).__name__}") from None
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        return {
            "key": key, "id": row_id, "model": self.config.model,
            "text": texts[0], **({"texts": texts} if len(texts) > 1 else {}),
            "finish_reason": choices[0].get("finish_reason") or "",
            "finish_reasons": [c.get("finish_reason") or "" for c in choices],
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "cost": self._cost(prompt_tokens, completion_tokens), "response_id": payload.get("id", ""),
            "paid_at": time.time(),
        }

    async def _logged_try(self, row_id: str, key: str, messages: list[dict], gate: BudgetGate, bound: int):
        """One try, logged before it leaves and closed by its outcome (cache.py): the entry (stored),
        a `_Refused` (closed as not paid), a `_MaybePaid` (closed as unknown), or None when the
        purchase is halting and the try must not leave. The budget counts it on the wire until its
        outcome is on disk, so a purchase that halts waits for exactly that."""
        if not await gate.begin_try():
            return None
        try:
            await self.cache.mark_sent_async(key, row_id, bound)
            try:
                entry = await self._attempt(row_id, key, messages)
                await self.cache.put_async(entry)
                return entry
            except _Refused as refused:
                await self.cache.mark_failed_async(key)
                return refused
            except _MaybePaid as lost:
                await self.cache.mark_unknown_async(key)
                return lost
        finally:
            await gate.end_try()

    async def _pass_rate_limits(self, bound: int) -> None:
        rpm, tpm = self._rate_limiters()
        if rpm:
            await rpm.acquire()
        if tpm:
            await tpm.acquire(min(bound, tpm.max_rate))

    async def fetch(self, row_id: str, question: str, gate: BudgetGate) -> Optional[list[dict]]:
        """The output rows of one question (teacher.n of them), from the cache or the teacher;
        None when the budget cannot take it.

        Every try is logged before it leaves and closed by what came of it (cache.py): a refused
        try costs nothing, now or on resume; a try that may have been paid stays charged at its
        worst case, and the next try reserves anew, so the budget stays a hard cap. 429s, 5xx,
        timeouts, dropped connections and malformed bodies are retried for teacher.retry_for_s."""
        messages = self.messages(question)
        key = self.key_for(question)
        entry = self.cache.get(key)
        if entry is not None:  # used by this run, so charged, but never paid again
            tokens = entry["prompt_tokens"] + entry["completion_tokens"]
            if not await gate.reserve(tokens, entry.get("cost", 0.0), settles=False):
                return None
            await gate.obtained()
            return _rows(row_id, key, entry, cached=True)
        prompt_bound = prompt_token_bound(messages)
        completion_bound = self.config.n * self.config.max_tokens  # every rationale of the request
        bound = prompt_bound + completion_bound
        worst_cost = self._cost(prompt_bound, completion_bound)
        if not await gate.reserve(bound, worst_cost):
            return None
        held, retry = True, RetryClock(self.config.retry_for_s)
        try:
            while True:
                await self._pass_rate_limits(bound)
                outcome = await self._logged_try(row_id, key, messages, gate, bound)
                if outcome is None:  # the purchase is halting: this row is not bought
                    if held:
                        await gate.release(bound, worst_cost)
                    return None
                if isinstance(outcome, dict):
                    entry = outcome
                    break
                if isinstance(outcome, _MaybePaid):  # charged at its worst case; a retry reserves anew
                    await gate.settle(bound, worst_cost, bound, worst_cost)
                    held = False
                try:
                    if isinstance(outcome, _Refused) and not outcome.retryable:
                        raise TeacherError(outcome.failure)
                    await _wait_to_retry(retry, outcome.failure, getattr(outcome, "server_asks", None), gate)
                except TeacherError:
                    # Given up: no worker sends again, and tries on the wire land before the
                    # purchase stops, so none is left in doubt (and charged as maybe paid).
                    await gate.halt(within_s=self.config.timeout_s + 5)
                    raise
                if not held:
                    if not await gate.reserve(bound, worst_cost):
                        return None
                    held = True
        except BaseException:
            if held:  # refused, given up, halted or stopped: what was reserved and not spent goes back
                await gate.release(bound, worst_cost)
            raise
        await gate.settle(bound, worst_cost, entry["prompt_tokens"] + entry["completion_tokens"], entry["cost"])
        await gate.obtained()
        return _rows(row_id, key, entry, cached=False)

    async def fetch_all(self, rows: pd.DataFrame, gate: BudgetGate, on_done: Optional[Callable] = None) -> list:
        """Outputs for rows (id, question), `concurrency` at a time; None where the budget ran out."""
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(row_id, question):
            async with semaphore:
                out = await self.fetch(row_id, question, gate)
            if on_done:
                on_done(out)
            return out

        tasks = [asyncio.ensure_future(one(r, q)) for r, q in zip(rows["id"], rows["question"])]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            # Stopped (cancelled, or a row failed): stop the other requests, then let the
            # response log finish what it was writing, so the worker's loop can close clean.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.cache.drain()
            raise

    def buy(self, rows: pd.DataFrame, budget: Budget, desc: str = "teacher",
            progress: bool = True) -> tuple[pd.DataFrame, PurchaseReport]:
        """Synchronous purchase in this process (tests, benchmarks, small runs)."""
        from ..console import progress as display

        if self.config.batch.enabled:  # the Batch API's purchase sits above this client (teacher/batch.py)
            raise ValueError("teacher.batch is enabled: buy through teacher.batch.buy_with(client, ...)")

        started = time.time()
        with display(len(rows), desc, "req", disable=not progress) as bar:
            budget.reopen()
            results = asyncio.run(self._fetch_and_close(rows, BudgetGate(budget), lambda _: bar.update(1)))
        return summarise(results, len(rows), time.time() - started)

    async def _fetch_and_close(self, rows, gate, on_done):
        try:
            return await self.fetch_all(rows, gate, on_done)
        finally:
            if self._client is not None:
                await self._client.close()
                self._client = None


def _httpx():
    try:
        import httpx2 as httpx  # what openai >= 2 is built on
    except ImportError:  # pragma: no cover - older openai releases use httpx
        import httpx
    return httpx


def _http_client(concurrency: int):
    """The openai client's own HTTP client with a keep-alive pool as wide as the concurrency
    and TCP_NODELAY (a request's headers and body must not wait on Nagle's algorithm)."""
    import socket

    import openai

    httpx = _httpx()
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=max(100, 2 * concurrency), max_keepalive_connections=max(20, concurrency)),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return openai.DefaultAsyncHttpxClient(transport=transport)


def _rows(row_id: str, key: str, entry: dict, cached: bool) -> list[dict]:
    """One row per rationale of a response (k = 0..n-1); the request's tokens and cost go on
    the first, so sums over rows are what the request cost."""
    texts = entry.get("texts") or [entry["text"]]
    reasons = entry.get("finish_reasons") or [entry["finish_reason"]] * len(texts)
    rows = []
    for k, (text, reason) in enumerate(zip(texts, reasons)):
        first = k == 0
        rows.append({
            "id": row_id, "k": k, "request_key": key, "model": entry["model"], "text": text,
            "prompt_tokens": entry["prompt_tokens"] if first else 0,
            "completion_tokens": entry["completion_tokens"] if first else 0,
            "finish_reason": reason, "source": "openai", "cached": cached,
            "cost": entry.get("cost", 0.0) if first else 0.0,
        })
    return rows


def summarise(results: list, requested: int, seconds: float) -> tuple[pd.DataFrame, PurchaseReport]:
    """Outputs in request order, and what was bought, sent, cached, truncated and spent."""
    bought = [rows for rows in results if rows is not None]
    frame = pd.DataFrame([row for rows in bought for row in rows], columns=TEACHER_COLUMNS + ["cost"])
    # Rows that came back through Ray Data beside blocks of rows the budget refused (all NaN there)
    # may carry 0.0 / 1.0 for a flag and floats for counts: one type per column, as stored.
    frame = frame.astype({"cached": bool, "prompt_tokens": "int64", "completion_tokens": "int64", "k": "int64"})
    report = PurchaseReport(requested=requested, not_bought_budget=len(results) - len(bought))
    report.bought = len(bought)  # questions (requests), whatever their rationales
    report.cache_hits = sum(bool(rows[0]["cached"]) for rows in bought)
    report.sent = report.bought - report.cache_hits
    report.truncated = int((frame["finish_reason"] == "length").sum()) if len(frame) else 0
    report.prompt_tokens = int(frame["prompt_tokens"].sum()) if len(frame) else 0
    report.completion_tokens = int(frame["completion_tokens"].sum()) if len(frame) else 0
    report.cost = float(frame["cost"].sum()) if len(frame) else 0.0
    report.seconds = round(seconds, 2)
    return frame.drop(columns=["cost"]), report
