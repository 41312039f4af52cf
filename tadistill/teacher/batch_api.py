"""The Batch API as a purchase sees it: a durable journal of the batches it submitted, and the
provider's /v1/files and /v1/batches through the `openai` client, retried where that is safe.

The journal, `<cache>/batches/journal.jsonl`, is JSON lines appended and fsynced before the
provider is asked anything that costs money, so no batch is ever submitted twice:
  upload    {part, requests, at}       the part's input file is written (`<part>.jsonl`, fsynced)
  uploaded  {part, file_id}            the provider holds it (a file costs nothing)
  create    {part, file_id, at}        a batch of it is about to be created
  created   {part, batch_id}           it was: from now on its lines may be paid
  status    {part, status, counts, at} what the provider said, when it changed
  done      {part, status}             its answers are in the response cache (or it failed)
  abandoned {part, reason}             no batch of it exists: nothing of it was paid
A part whose `create` has no `created` (the process died while the provider answered) is
looked up among the provider's batches by its input file before anything is created anew.
`Watch` is what a person sees meanwhile: a console line per batch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..retry import RetryClock
from .client import RETRYABLE_STATUS, TeacherError, retry_after

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
JOURNAL = "journal.jsonl"
SAY_EVERY_S = 30.0  # a console that is no terminal gets a line per batch this often


class GaveUp(TeacherError):
    """A call that failed for teacher.retry_for_s without an answer from the provider: whether a
    create went through is unknown."""


@dataclass
class Part:
    """One input file, and the one batch made of it."""

    part: str
    requests: int = 0
    file_id: Optional[str] = None
    create_at: Optional[float] = None
    batch_id: Optional[str] = None
    history: list[dict] = field(default_factory=list)  # {status, at, completed, failed, total}
    done: bool = False
    abandoned: bool = False
    submitted_here: bool = True  # False: re-attached to, submitted by an earlier invocation

    @property
    def status(self) -> str:
        return self.history[-1]["status"] if self.history else ("created" if self.batch_id else "unsubmitted")


class Journal:
    def __init__(self, cache_folder: Path):
        self.folder = Path(cache_folder) / "batches"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JOURNAL
        self.parts: dict[str, Part] = {}
        if self.path.exists():
            content = self.path.read_bytes()
            whole = content[:content.rfind(b"\n") + 1]
            if whole != content:  # a write torn by a crash: its event never happened; the next appends after it
                log.warning("%s: dropped a torn last line", self.path)
                tmp = self.path.with_name(JOURNAL + ".tmp")
                tmp.write_bytes(whole)
                os.replace(tmp, self.path)
            for raw in whole.splitlines():
                try:
                    self._apply(json.loads(raw))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: ignored a line that is no event", self.path)

    def input_path(self, part: str) -> Path:
        return self.folder / f"{part}.jsonl"

    def new_part(self, content: bytes, requests: int) -> Part:
        """A part's input file, on disk and fsynced, and its `upload` event."""
        part = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path = self.input_path(part)
        with open(path, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        self.write("upload", part, requests=requests)
        return self.parts[part]

    def write(self, event: str, part: str, **fields) -> None:
        entry = {"event": event, "part": part, "at": time.time(), **fields}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:  # written (closing flushes it) whatever stops the fsync: what this process knows follows the file
                self._apply(entry)

    def _apply(self, entry: dict) -> None:
        event, name = entry["event"], entry["part"]
        part = self.parts.setdefault(name, Part(name))
        if event == "upload":
            part.requests = entry.get("requests", 0)
        elif event == "uploaded":
            part.file_id = entry["file_id"]
        elif event == "create":
            part.file_id, part.create_at = entry["file_id"], entry["at"]
        elif event == "created":
            part.batch_id = entry["batch_id"]
        elif event == "status":
            part.history.append({k: entry.get(k) for k in ("status", "at", "completed", "failed", "total")})
        elif event == "done":
            part.done = True
        elif event == "abandoned":
            part.abandoned = True

    def unfinished(self) -> list[Part]:
        """Parts an earlier invocation left: a batch may exist for them, and it is not downloaded."""
        return [p for p in self.parts.values() if not p.done and not p.abandoned]


class Provider:
    """/v1/files and /v1/batches of one endpoint, through the synchronous `openai` client."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float, retry_for_s: float):
        import openai

        # Retries are ours: an idempotent call is retried for teacher.retry_for_s, a create never blindly.
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.base_url, self.retry_for_s = base_url, retry_for_s

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, call: Callable, on_retry: Optional[Callable] = None):
        """`call()`, its 429s, 5xx, timeouts and dropped connections retried for teacher.retry_for_s
        (`on_retry()` first, when given: it may find that an earlier try did succeed)."""
        import openai

        retry = RetryClock(self.retry_for_s)
        while True:
            try:
                return call()
            except openai.APIStatusError as exc:
                failure = f"{what} at {self.base_url}: HTTP {exc.status_code}: {_message(exc)}"
                if exc.status_code not in RETRYABLE_STATUS:
                    raise TeacherError(failure) from None
                asks = retry_after(exc.response)
            except openai.APIConnectionError as exc:
                failure, asks = f"{what} at {self.base_url} failed: {type(exc).__name__}: {exc}", None
            delay = retry.next_delay(asks)
            if delay is None:
                raise GaveUp(f"{failure}; gave up after {retry.tries} tries in {retry.window_s:g} s "
                             "(teacher.retry_for_s)")
            log.warning("%s; retrying in %.1f s", failure, delay)
            time.sleep(delay)
            if on_retry is not None:
                found = on_retry()
                if found is not None:
                    return found

    def upload(self, path: Path) -> str:
        content = path.read_bytes()
        return self._call("uploading a batch input file",
                          lambda: self.client.files.create(file=(path.name, content, "application/jsonl"),
                                                           purpose="batch")).id

    def create(self, file_id: str, window: str, metadata: dict):
        """A batch of the uploaded file. A try whose answer was lost may have created it: before
        another try, the provider's batches are searched for one of this input file."""
        return self._call("creating a batch",
                          lambda: self.client.batches.create(input_file_id=file_id, endpoint=ENDPOINT,
                                                             completion_window=window, metadata=metadata),
                          on_retry=lambda: self.find(file_id, since=time.time() - 3600))

    def find(self, file_id: str, since: float):
        """The provider's batch of this input file, if one exists (newest first, back to `since`)."""
        def search():
            for batch in self.client.batches.list(limit=100):
                if batch.input_file_id == file_id:
                    return batch
                if batch.created_at and batch.created_at < since - 600:
                    return None
            return None

        return self._call("listing batches", search)

    def retrieve(self, batch_id: str):
        return self._call(f"looking at batch {batch_id}", lambda: self.client.batches.retrieve(batch_id))

    def content(self, file_id: str) -> bytes:
        return self._call(f"downloading file {file_id}", lambda: self.client.files.content(file_id).content)


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return " ".join(str(inner["message"]).split())
    return " ".join(str(getattr(exc, "message", exc)).split())


def request_line(key: str, body: dict) -> bytes:
    """One line of a batch input file: the request the synchronous path would send, keyed by its cache key."""
    return (json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}) + "\n").encode()


def output_lines(content: bytes):
    """(custom_id, response or None, error or None) of each line of an output or error file."""
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            yield line["custom_id"], line.get("response"), line.get("error")
        except (ValueError, KeyError, TypeError):
            log.warning("a batch result line is not JSON with a custom_id: skipped (its request is bought again)")


def line_failure(response: Optional[dict], error: Optional[dict]) -> tuple[str, bool]:
    """What a failed line says, in one line, and whether buying it again may succeed."""
    if response is not None:
        status = int(response.get("status_code") or 0)
        body = response.get("body") or {}
        inner = body.get("error", body) if isinstance(body, dict) else {}
        message = inner.get("message") if isinstance(inner, dict) else None
        return f"HTTP {status}: {' '.join(str(message or body).split())}", status in RETRYABLE_STATUS or status == 0
    error = error or {}
    return f"{error.get('code') or 'error'}: {' '.join(str(error.get('message') or '').split())}", True


class Watch:
    """One console line per batch while it runs (id, status, completed/failed/total, elapsed), updated
    in place on a terminal; elsewhere a line per batch every SAY_EVERY_S seconds."""

    def __init__(self, desc: str, enabled: bool):
        self.desc, self.enabled = desc, enabled
        self.bars: dict[str, object] = {}
        self.said: dict[str, tuple[float, str]] = {}
        self.seen: dict[str, object] = {}

    def line(self, batch) -> str:
        counts = batch.request_counts
        done = f"{counts.completed}/{counts.failed}/{counts.total}" if counts else "-/-/-"
        elapsed = max(0, int(time.time() - (batch.created_at or time.time())))
        return (f"{self.desc} batch {batch.id}: {batch.status}, {done} completed/failed/total, "
                f"{elapsed // 3600}h{elapsed // 60 % 60:02d}m{elapsed % 60:02d}s")

    def show(self, part: Part, batch) -> None:
        self.seen[part.part] = batch
        if not self.enabled:
            return
        from ..console import fit, is_terminal, progress, width

        text = self.line(batch)
        if is_terminal():
            bar = self.bars.get(part.part)
            if bar is None:
                bar = self.bars[part.part] = progress(0, self.desc, "req", bar_format="{desc}",
                                                      position=len(self.bars))
            bar.set_description_str(fit(text, width()), refresh=True)
            return
        last, status = self.said.get(part.part, (0.0, ""))
        if time.time() - last >= SAY_EVERY_S or batch.status != status:
            log.info("%s", text)
            self.said[part.part] = (time.time(), batch.status)

    def sleep(self, seconds: float, active: list[Part]) -> None:
        """Wait until the next look at the batches, the elapsed times kept current meanwhile."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(1.0, left))
            for part in active:
                if part.part in self.seen:
                    self.show(part, self.seen[part.part])

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
