"""Buying teacher outputs: the `openai` client, a response cache, and a hard request budget.

Every request is keyed by a hash of model, messages and sampling parameters. A response
whose key is in the cache (an append-only JSONL file in the run directory, fsynced line by
line) is never requested again, so a rerun or a resume pays nothing twice. The budget
counts requests *used* by the run, cache hits included, so what the method buys does not
depend on what happened to be cached; `sent` counts what was actually paid this time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
from tqdm.auto import tqdm

from ..config import TeacherConfig
from ..tasks.prompts import teacher_messages
from .budget import TEACHER_COLUMNS, PurchaseReport, RequestBudget

log = logging.getLogger(__name__)

class TeacherError(RuntimeError):
    pass


def request_key(model: str, messages: list[dict], params: dict) -> str:
    payload = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Append-only JSONL of paid responses; a torn last line from a crash is ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self.torn_lines = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    entry = json.loads(raw)
                    self._entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                    self.torn_lines += 1
        if self.torn_lines:
            log.warning("%s: ignored %d torn line(s) left by an interrupted write", self.path, self.torn_lines)
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as handle:
            for entry in self._entries.values():
                handle.write(json.dumps(entry) + "\n")
        os.replace(tmp, self.path)

    def get(self, key: str) -> Optional[dict]:
        return self._entries.get(key)

    def put(self, entry: dict) -> None:
        line = json.dumps(entry) + "\n"
        with self._lock:
            with self.path.open("a") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)


def _api_key(config: TeacherConfig) -> str:
    key = os.environ.get(config.api_key_env)
    if key:
        return key
    if config.source == "openai":
        raise TeacherError(
            f"teacher.source is 'openai' but the environment variable {config.api_key_env} "
            "(teacher.api_key_env) is not set"
        )
    return "no-key-needed-for-the-local-simulated-teacher"


class TeacherClient:
    """Buys teacher outputs; the endpoint is only resolved (and started) for a cache miss.

    base_url may be a callable, so that a run answered wholly from the cache never starts
    the teacher it would otherwise need.
    """

    def __init__(self, config: TeacherConfig, base_url: str | Callable[[], str], cache: ResponseCache,
                 system_prompt: str):
        self.config = config
        self.cache = cache
        self.system_prompt = system_prompt
        self._api_key = _api_key(config)  # fail before any work when the secret is missing
        self._base_url = base_url if callable(base_url) else (lambda: base_url)
        self._client = None
        self._client_lock = threading.Lock()
        self.params = {"temperature": config.temperature, "max_tokens": config.max_tokens}

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self._base_url(),
                    api_key=self._api_key,
                    timeout=self.config.timeout_s,
                    max_retries=self.config.max_retries,  # backs off on 429/5xx/timeouts, honouring Retry-After
                )
            return self._client

    def _messages(self, question: str) -> list[dict]:
        return teacher_messages(question, self.system_prompt)

    def _send(self, row_id: str, key: str, messages: list[dict]) -> dict:
        import openai

        try:
            response = self.client.chat.completions.create(model=self.config.model, messages=messages, **self.params)
        except openai.APIStatusError as exc:
            request_id = exc.response.headers.get("x-request-id", "?") if exc.response is not None else "?"
            raise TeacherError(
                f"teacher refused the request for row {row_id!r}: HTTP {exc.status_code} "
                f"(request id {request_id}): {exc.message}"
            ) from None
        except openai.APIError as exc:
            raise TeacherError(f"teacher request for row {row_id!r} failed after retries: {exc}") from None
        choice = response.choices[0]
        usage = response.usage
        return {
            "key": key,
            "model": self.config.model,
            "text": choice.message.content or "",
            "finish_reason": choice.finish_reason or "",
            "prompt_tokens": int(usage.prompt_tokens) if usage else 0,
            "completion_tokens": int(usage.completion_tokens) if usage else 0,
            "response_id": response.id,
            "paid_at": time.time(),
        }

    def _one(self, row_id: str, question: str, budget: RequestBudget) -> Optional[dict]:
        messages = self._messages(question)
        key = request_key(self.config.model, messages, self.params)
        if not budget.reserve():
            return None
        entry = self.cache.get(key)
        cached = entry is not None
        if not cached:
            try:
                entry = self._send(row_id, key, messages)
            except Exception:
                budget.release()
                raise
            self.cache.put(entry)
        return {
            "id": row_id,
            "k": 0,
            "request_key": key,
            "model": entry["model"],
            "text": entry["text"],
            "prompt_tokens": entry["prompt_tokens"],
            "completion_tokens": entry["completion_tokens"],
            "finish_reason": entry["finish_reason"],
            "source": "openai",
            "cached": cached,
        }

    def buy(self, rows: pd.DataFrame, budget: RequestBudget, desc: str = "teacher") -> tuple[pd.DataFrame, PurchaseReport]:
        """Teacher outputs for rows (id, question) in order of preference, until the budget ends."""
        report = PurchaseReport(requested=len(rows))
        started = time.time()
        wanted = list(zip(rows["id"], rows["question"]))[: max(0, budget.left)]
        report.not_bought_budget = len(rows) - len(wanted)
        results: list[dict] = []
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool, tqdm(
            total=len(wanted), desc=f"{desc} (budget {budget.limit})", unit="req", leave=False
        ) as bar:
            futures = [pool.submit(self._one, rid, q, budget) for rid, q in wanted]
            for future in as_completed(futures):
                out = future.result()
                bar.update(1)
                if out is None:
                    report.not_bought_budget += 1
                    continue
                results.append(out)
        frame = pd.DataFrame(results, columns=TEACHER_COLUMNS)
        order = {rid: i for i, (rid, _) in enumerate(wanted)}
        frame = frame.sort_values("id", key=lambda s: s.map(order)).reset_index(drop=True)
        report.bought = len(frame)
        report.cache_hits = int(frame["cached"].sum()) if len(frame) else 0
        report.sent = report.bought - report.cache_hits
        report.prompt_tokens = int(frame["prompt_tokens"].sum()) if len(frame) else 0
        report.completion_tokens = int(frame["completion_tokens"].sum()) if len(frame) else 0
        report.seconds = round(time.time() - started, 2)
        return frame, report
