"""A purchase bought through the provider's Batch API (`teacher.batch`): the same requests as the
synchronous path, at the batch price, answered within a day.

One purchase is one call of `buy_in_batches`. Its requests (one line each, keyed by the response
cache's key of the request, so `custom_id` is what the cache stores) are reserved from the budget
at their worst case at the batch price before any batch is created, written as JSONL input files
of at most `max_requests` lines and 200 MB, uploaded and submitted; every step is journaled
(batch_api.py) before the provider hears of it, so a rerun after Ctrl-C, a kill or a lost node
re-attaches to the batches in flight and submits nothing twice. A finished batch's output and error
files are read line by line into the response cache, each custom_id once, where the rest of the
pipeline reads them like synchronous answers; each reservation settles to the usage its response
reports. Lines that failed, and those an expired or cancelled batch never answered, are bought
again in the next batch or synchronously (`on_failed_lines`), within the same budget.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from ..config import TeacherConfig
from ..config.teacher import BATCH_DISCOUNT
from ..tasks.prompts import teacher_messages
from .batch_api import (TERMINAL, GaveUp, Journal, Part, Provider, Watch, line_failure, output_lines,
                        request_line)
from .budget import Budget, PurchaseReport
from .cache import ResponseCache
from .client import (TeacherError, _rows, prompt_token_bound, read_api_key, request_cost, request_key, request_params,
                     summarise)

log = logging.getLogger(__name__)

MAX_BYTES = 200_000_000  # the Batch API's limit on an input file
MAX_LINE_TRIES = 3  # batches one request may fail in before the purchase stops, naming it
WAIT_FOR_ROOM_S = 60.0  # how long rows wait for reservations held elsewhere to settle


@dataclass
class _Line:
    key: str
    row: Optional[int]  # the purchase's row waiting on it (None: a line of an earlier purchase)
    tokens: int  # its worst case, reserved at the batch price
    cost: float
    reserved: bool = True


def batch_info(report: PurchaseReport) -> dict:
    """What a step's info says of the batches its purchase bought (nothing when it bought none)."""
    if not report.batches:
        return {}
    cost = sum(b["cost"] for b in report.batches)
    sync_cost = sum(b["sync_cost"] for b in report.batches)
    return {"batch": {"batches": report.batches, "cost": round(cost, 6), "sync_cost": round(sync_cost, 6),
                      "saved": round(sync_cost - cost, 6)}}


def discounted(price: Optional[tuple[float, float]], share: float = BATCH_DISCOUNT) -> Optional[tuple[float, float]]:
    return (price[0] * share, price[1] * share) if price else None


def buy_with(client, rows: pd.DataFrame, budget, desc: str = "teacher",
             progress: bool = True) -> tuple[pd.DataFrame, PurchaseReport]:
    """An in-process purchase through the Batch API with a TeacherClient's settings (its config,
    endpoint, response cache, system prompt and price): what `client.buy` is for synchronous buying."""
    return buy_in_batches(rows, client.config, client._base_url, client.cache, client.system_prompt, budget,
                          client.price, desc=desc, progress=progress)


def buy_in_batches(rows: pd.DataFrame, config: TeacherConfig, base_url: str | Callable[[], str],
                   cache: ResponseCache | Path, system_prompt: str, budget, price: Optional[tuple[float, float]] = None,
                   batch_price: Optional[tuple[float, float]] = None, desc: str = "teacher",
                   progress: bool = True) -> tuple[pd.DataFrame, PurchaseReport]:
    """Outputs for rows (id, question) in order of preference, until the budget (a Budget, or the
    run's ledger actor) ends: the same frame and report as the synchronous path, the report's
    `batches` saying what each batch did. `price` is the synchronous price (what the batches are
    compared with, and what `on_failed_lines: sync` pays); `batch_price` defaults to half of it."""
    cache = cache if isinstance(cache, ResponseCache) else ResponseCache(Path(cache))
    started = time.time()
    purchase = _Purchase(rows, config, base_url, cache, system_prompt, budget, price,
                         batch_price if batch_price is not None else discounted(price), desc, progress)
    try:
        purchase.run()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            purchase.say_stopped()
        try:
            purchase.give_back_held()
        except Exception:  # noqa: BLE001 - what stopped the purchase is what the caller must hear of
            log.debug("could not give back the reservations of a stopped purchase", exc_info=True)
        raise
    finally:
        purchase.close()
    frame, report = summarise(purchase.results, len(rows), time.time() - started)
    report.batches = purchase.info
    if report.batches:
        said = batch_info(report)["batch"]
        log.info("%s: %d batch(es), %d request(s) answered, cost %.4f at the batch price (%.4f one at a time)", desc,
                 len(report.batches), sum(b["answered"] for b in report.batches), said["cost"], said["sync_cost"])
    return frame, report


def _ledger(budget) -> Callable:
    """Call a method of the budget: a local Budget, or the run's ledger actor."""
    if isinstance(budget, Budget):
        return lambda method, *args: getattr(budget, method)(*args)
    import ray

    return lambda method, *args: ray.get(getattr(budget, method).remote(*args))


class _Purchase:
    def __init__(self, rows, config: TeacherConfig, base_url, cache: ResponseCache, system_prompt: str, budget,
                 price, batch_price, desc: str, progress: bool):
        self.rows, self.config, self.cache, self.budget = rows.reset_index(drop=True), config, cache, budget
        self.system_prompt, self.price, self.batch_price, self.desc = system_prompt, price, batch_price, desc
        self.url = base_url if callable(base_url) else (lambda: base_url)
        self.ledger = _ledger(budget)
        self.params = request_params(config)
        self.ids = list(self.rows["id"])
        self.messages = [teacher_messages(q, system_prompt) for q in self.rows["question"]]
        self.keys = [request_key(config.model, m, self.params) for m in self.messages]
        self.results: list = [None] * len(self.rows)
        self.journal = Journal(cache.folder)
        self.lines: dict[str, list[_Line]] = {}  # part -> its lines whose reservations are held
        self.tries: collections.Counter = collections.Counter()
        self.failures: list[str] = []  # lines that cannot be bought: the purchase stops, naming them
        self.info: list[dict] = []
        self.watch = Watch(desc, progress)
        self._provider: Optional[Provider] = None

    def provider(self) -> Provider:
        if self._provider is None:  # an endpoint started only when a batch must be sent or looked at
            self._provider = Provider(self.url(), read_api_key(self.config), self.config.timeout_s,
                                      self.config.retry_for_s)
        return self._provider

    def close(self) -> None:
        self.watch.close()
        if self._provider is not None:
            self._provider.close()

    def worst(self, messages: list[dict], completion_limit: int, n: int) -> tuple[int, float]:
        prompt, completion = prompt_token_bound(messages), n * completion_limit
        return prompt + completion, request_cost(self.batch_price, prompt, completion)

    # -- the purchase -----------------------------------------------------------------------

    def run(self) -> None:
        self.ledger("reopen")
        pending = list(range(len(self.rows)))
        inflight = self.reattach(pending)
        covered = {line.row for part in inflight for line in self.lines[part.part]}
        pending = [i for i in pending if i not in covered]
        waited = None
        while pending or inflight:
            planned, pending = self.reserve(pending)
            if planned:
                inflight += self.submit(planned)
            if not inflight:  # every row left waits for reservations held by other purchases
                waited = waited or time.monotonic()
                if time.monotonic() - waited > WAIT_FOR_ROOM_S:
                    break
                time.sleep(0.2)
                continue
            waited = None
            again = self.wait(inflight)
            inflight = []
            if self.failures:
                raise TeacherError(self.stopped(self.failures[0] + (f" (and {len(self.failures) - 1} more)"
                                                                    if len(self.failures) > 1 else "")))
            if again and self.config.batch.on_failed_lines == "sync":
                self.buy_one_by_one(again)
            else:
                pending = sorted(set(pending) | set(again))

    def stopped(self, why: str) -> str:
        bought = sum(r is not None for r in self.results)
        return (f"{self.desc} stopped: {why}. {bought} of the {len(self.rows)} requests of this purchase were bought "
                "and stored; run the same command again to resume (nothing stored is paid twice)")

    def reserve(self, pending: list[int]) -> tuple[list[int], list[int]]:
        """Reserve, in order of preference, each row's exact cost (a stored response) or its worst case
        at the batch price: rows to submit now, and rows that wait for reservations to settle."""
        asks, asked, later = [], [], []
        keys = {line.key for lines in self.lines.values() for line in lines}  # in batches already
        for i in pending:
            key, entry = self.keys[i], self.cache.get(self.keys[i])
            if entry is not None:
                asks.append((entry["prompt_tokens"] + entry["completion_tokens"], entry.get("cost", 0.0), False))
            elif key in keys:  # the same request twice: the second is answered from the cache
                later.append(i)
                continue
            else:
                keys.add(key)
                asks.append((*self.worst(self.messages[i], self.config.max_tokens, self.config.n), True))
            asked.append((i, entry))
        planned = []
        for (i, entry), answer in zip(asked, self.ledger("try_reserve_each", asks) if asks else []):
            if answer == "reserved" and entry is not None:
                self.results[i] = _rows(self.ids[i], self.keys[i], entry, cached=True)
            elif answer == "reserved":
                planned.append(i)
            elif answer == "wait":
                later.append(i)
        return planned, sorted(later)

    def submit(self, planned: list[int]) -> list[Part]:
        """The planned rows as parts of at most max_requests lines and MAX_BYTES, each uploaded and
        submitted as a batch, journaled before the provider hears of it."""
        chunks, chunk, size = [], [], 0
        for i in planned:
            line = request_line(self.keys[i], {"model": self.config.model, "messages": self.messages[i], **self.params})
            if chunk and (len(chunk) >= self.config.batch.max_requests or size + len(line) > MAX_BYTES):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append((i, line))
            size += len(line)
        chunks.append(chunk)
        parts = []
        for number, chunk in enumerate(chunks):
            part = self.journal.new_part(b"".join(line for _, line in chunk), len(chunk))
            self.lines[part.part] = [_Line(self.keys[i], i, *self.worst(self.messages[i], self.config.max_tokens,
                                                                        self.config.n)) for i, _ in chunk]
            try:
                self.send(part)
            except BaseException:
                for later in chunks[number + 1:]:  # never submitted: their reservations go back
                    self.ledger("settle_each", [], [self.worst(self.messages[i], self.config.max_tokens,
                                                               self.config.n) for i, _ in later])
                raise
            parts.append(part)
        return parts

    def send(self, part: Part) -> None:
        provider = self.provider()
        try:
            file_id = provider.upload(self.journal.input_path(part.part))
            self.journal.write("uploaded", part.part, file_id=file_id)
            self.journal.write("create", part.part, file_id=file_id)
            batch = provider.create(file_id, self.config.batch.completion_window, {"tadistill_part": part.part})
        except TeacherError as exc:
            # Refused (the provider answered 4xx), or the upload given up: no batch of it exists. A create
            # given up after retry_for_s may have gone through: its intent stays, a rerun looks for it.
            if not (isinstance(exc, GaveUp) and part.create_at is not None):
                self.journal.write("abandoned", part.part, reason=str(exc))
            self.give_back(part)
            raise TeacherError(self.stopped(str(exc))) from None
        self.journal.write("created", part.part, batch_id=batch.id)
        self.note(part, batch)
        log.info("%s: batch %s submitted (%d requests)", self.desc, batch.id, part.requests, extra={"console": False})

    def reattach(self, pending: list[int]) -> list[Part]:
        """The batches earlier invocations submitted and did not download: found, their lines reserved
        again (this invocation's budget does not hold them), and waited for; none is submitted anew."""
        parts, waiting = [], {}
        for i in pending:
            if self.cache.get(self.keys[i]) is None:
                waiting.setdefault(self.keys[i], i)
        for part in self.journal.unfinished():
            if part.batch_id is None:
                batch = self.provider().find(part.file_id, part.create_at) if part.create_at else None
                if batch is None:  # never created: nothing of it was paid, its rows are bought anew
                    self.journal.write("abandoned", part.part, reason="no batch of it exists")
                    continue
                self.journal.write("created", part.part, batch_id=batch.id)
            part.submitted_here = False
            path = self.journal.input_path(part.part)
            content = path.read_bytes() if path.exists() else self.provider().content(part.file_id)
            lines = []
            for key, body in _requests(content):
                limit = body.get("max_completion_tokens") or body.get("max_tokens") or self.config.max_tokens
                lines.append(_Line(key, waiting.pop(key, None), *self.worst(body.get("messages") or [], int(limit),
                                                                           int(body.get("n") or 1))))
            answers = self.ledger("try_reserve_each", [(line.tokens, line.cost, True) for line in lines])
            for line, answer in zip(lines, answers):
                line.reserved = answer == "reserved"
            if not all(line.reserved for line in lines):
                log.warning("%s: batch %s was submitted by an earlier invocation and no longer fits the budget "
                            "(teacher.* or budget.* changed?): its answers are stored, %d of them uncharged",
                            self.desc, part.batch_id, sum(not line.reserved for line in lines))
            self.lines[part.part] = lines
            parts.append(part)
        if parts:
            log.info("%s: re-attached to %d batch(es) an earlier invocation submitted: %s", self.desc, len(parts),
                     ", ".join(p.batch_id for p in parts))
        return parts

    def wait(self, parts: list[Part]) -> list[int]:
        """Wait for the batches, reading each into the cache as it ends: the rows to buy again."""
        active, again, rejected = list(parts), [], []
        while active:
            for part in list(active):
                batch = self.provider().retrieve(part.batch_id)
                self.note(part, batch)
                self.watch.show(part, batch)
                if batch.status in TERMINAL:
                    active.remove(part)
                    again += self.collect(part, batch)
                    if batch.status == "failed":
                        rejected.append(f"the provider rejected batch {batch.id}: {_errors(batch)}")
            if rejected:
                running = f" (batches {', '.join(p.batch_id for p in active)} still run: the same command " \
                          "re-attaches to them)" if active else ""
                raise TeacherError(self.stopped(rejected[0] + running))
            if active:
                self.watch.sleep(self.config.batch.poll_s, active)
        return again

    def say_stopped(self) -> None:
        """On Ctrl-C or SIGTERM: which batches keep running at the provider, and how to resume them."""
        running = [p for p in self.journal.unfinished() if p.batch_id or p.create_at]
        if running:
            said = ", ".join(p.batch_id or f"{p.part} (being created)" for p in running)
            log.warning("%s: stopped while batch(es) %s run at %s. Run the same command again to resume them: "
                        "nothing is submitted or paid twice", self.desc, said,
                        self._provider.base_url if self._provider else "the provider")

    def note(self, part: Part, batch) -> None:
        """A status the provider reports, journaled when it changed (the batch's history)."""
        counts = batch.request_counts
        if batch.status != part.status:
            self.journal.write("status", part.part, status=batch.status, completed=counts.completed if counts else 0,
                               failed=counts.failed if counts else 0, total=counts.total if counts else 0)

    def collect(self, part: Part, batch) -> list[int]:
        """An ended batch's output and error files into the cache, each custom_id once; its
        reservations settled (answered) or given back (not): the rows to buy again."""
        lines = {line.key: line for line in self.lines.pop(part.part)}
        entries, failed, settled, released, maybe_paid = {}, {}, [], [], []
        for file_id in (batch.output_file_id, batch.error_file_id):
            for key, response, error in output_lines(self.provider().content(file_id) if file_id else b""):
                line = lines.get(key)
                if line is None or key in entries or key in failed:
                    continue  # not of this batch, or said already: one custom_id once
                if self.cache.get(key) is not None:  # stored by an earlier invocation's download of it
                    entries[key] = None
                    released.append(line)
                elif response is not None and response.get("status_code") == 200:
                    entry = self.entry(key, line, response.get("body"), batch.id)
                    if entry is None:  # malformed: maybe paid (charged, logged as the client does), bought again
                        failed[key] = ("the provider sent a malformed response", True)
                        settled.append((line, line.tokens, line.cost))
                        maybe_paid += [{"key": key, "state": "sent", "id": self.ids[line.row] if line.row is not None
                                        else "", "reserved_tokens": line.tokens}, {"key": key, "state": "unknown"}]
                    else:
                        entries[key] = entry
                        settled.append((line, entry["prompt_tokens"] + entry["completion_tokens"], entry["cost"]))
                else:
                    failed[key] = line_failure(response, error)
                    released.append(line)
        for key, line in lines.items():
            if key not in entries and key not in failed:
                failed[key] = (f"not answered before the batch was {batch.status}", True)
                released.append(line)
        stored = [e for e in entries.values() if e is not None]
        self.cache.put_many(stored + maybe_paid)  # durable before the journal says the batch is done
        self.ledger("settle_each", [(line.tokens, line.cost, tokens, cost) for line, tokens, cost in settled
                                    if line.reserved],
                    [(line.tokens, line.cost) for line in released if line.reserved])
        self.journal.write("done", part.part, status=batch.status, answered=len(stored), failed=len(failed))
        for entry in stored:
            line = lines[entry["key"]]
            if line.row is not None:
                self.results[line.row] = _rows(self.ids[line.row], line.key, entry, cached=False)
        self.info.append(self.describe(part, batch, stored, len(failed)))
        if batch.status == "failed":
            return []
        again = []
        for key, (message, retryable) in failed.items():
            line = lines[key]
            if line.row is None:
                continue
            self.tries[key] += 1
            if not retryable:
                self.failures.append(f"batch {batch.id} refused row {self.ids[line.row]!r}: {message}")
            elif self.tries[key] >= MAX_LINE_TRIES:
                self.failures.append(f"row {self.ids[line.row]!r} failed in {self.tries[key]} batches, the last "
                                     f"{batch.id}: {message}")
            else:
                again.append(line.row)
        if again:
            log.info("%s: batch %s left %d request(s) unanswered; buying them %s", self.desc, batch.id, len(again),
                     "synchronously" if self.config.batch.on_failed_lines == "sync" else "in the next batch")
        return again

    def entry(self, key: str, line: _Line, body, batch_id: str) -> Optional[dict]:
        """The cache entry of an answered line: what the synchronous path stores, at the batch price."""
        try:
            choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] or "" for c in choices]
            if not texts:
                return None
            usage = body.get("usage") or {}
        except (KeyError, TypeError, AttributeError):
            return None
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        return {
            "key": key, "id": self.ids[line.row] if line.row is not None else "", "model": self.config.model,
            "text": texts[0], **({"texts": texts} if len(texts) > 1 else {}),
            "finish_reason": choices[0].get("finish_reason") or "",
            "finish_reasons": [c.get("finish_reason") or "" for c in choices],
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "cost": request_cost(self.batch_price, prompt_tokens, completion_tokens), "response_id": body.get("id", ""),
            "paid_at": time.time(), "batch_id": batch_id,
        }

    def describe(self, part: Part, batch, stored: list[dict], failed: int) -> dict:
        prompt = sum(e["prompt_tokens"] for e in stored)
        completion = sum(e["completion_tokens"] for e in stored)
        return {"batch_id": batch.id, "input_file_id": batch.input_file_id, "status": batch.status,
                "requests": part.requests, "answered": len(stored), "failed": failed,
                "resumed": not part.submitted_here, "history": [dict(h) for h in part.history],
                "prompt_tokens": prompt, "completion_tokens": completion,
                "cost": round(sum(e["cost"] for e in stored), 6),
                "sync_cost": round(request_cost(self.price, prompt, completion), 6)}

    def buy_one_by_one(self, again: list[int]) -> None:
        """`on_failed_lines: sync`: the rows a batch left, bought one request at a time (the
        synchronous client, its price and retries) from the same budget."""
        from .client import BudgetGate, TeacherClient

        client = TeacherClient(self.config, self.url, self.cache, self.system_prompt, self.price)
        results = asyncio.run(client._fetch_and_close(self.rows.iloc[again], BudgetGate(self.budget), None))
        for i, out in zip(again, results):
            self.results[i] = out

    def give_back(self, part: Part) -> None:
        lines = self.lines.pop(part.part, [])
        self.ledger("settle_each", [], [(line.tokens, line.cost) for line in lines if line.reserved])

    def give_back_held(self) -> None:
        """What is still reserved when the purchase stops goes back (a rerun reserves it again)."""
        for part in list(self.lines):
            self.give_back(Part(part))


def _requests(content: bytes):
    """(custom_id, body) of each line of an input file."""
    import json

    for raw in content.splitlines():
        if raw.strip():
            line = json.loads(raw)
            yield line["custom_id"], line.get("body") or {}


def _errors(batch) -> str:
    errors = getattr(batch.errors, "data", None) or []
    said = "; ".join(" ".join(f"{e.message or e.code}{f' (line {e.line})' if e.line else ''}".split()) for e in errors)
    return said or "no reason given"
