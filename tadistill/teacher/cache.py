"""The response cache and ledger: append-only JSONL shards in the run directory.

Each writer (a process, a Ray Data actor) appends to a shard of its own, one fsynced line
per event, so no two processes interleave a line and a crash can tear at most the last
line of one shard (ignored and repaired on load). Two events per try of a request:
- an intent ({"key", "state": "sent"}) written before the try leaves, and
- what closed it: the response ({"key", "text", tokens, cost, ...}); {"key", "state": "failed"}
  when the teacher answered with an error or the connection never opened (not paid); or
  {"key", "state": "unknown"} when the outcome cannot be known (a timeout or a dropped
  connection after the request left, a malformed 200): it may have been paid.
A key with a response is never requested again. An intent closed as unknown, and an intent
never closed (in flight when a process died or was stopped), may have been paid: each is
charged to the budget ('orphan'), and the key is sent again only because its answer was
never received. A refused try is closed when it is refused, so an outage costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger(__name__)

LEGACY_FILE = "cache.jsonl"  # runs made before the cache was sharded


class ResponseCache:
    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._responses: dict[str, dict] = {}
        self._intents: dict[str, list[dict]] = {}  # every send of a key, in order
        self._maybe_paid: list[dict] = []  # sends closed as 'unknown': they may have been paid
        self.torn_lines = 0
        for shard in sorted(self.folder.glob("*.jsonl")):
            self._load(shard)
        legacy = self.folder.parent / LEGACY_FILE
        if legacy.exists():
            self._load(legacy)
        self._shard = self.folder / f"part-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._handle = None
        self._committer: Optional[_GroupCommit] = None

    def _load(self, path: Path) -> None:
        good, torn = [], 0
        with path.open("rb") as handle:
            for raw in handle:
                try:
                    entry = json.loads(raw)
                    entry["key"]
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    torn += 1
                    continue
                good.append(entry)
                self._record(entry)
        if torn:
            self.torn_lines += torn
            log.warning("%s: ignored %d torn line(s) left by an interrupted write", path, torn)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in good))
            os.replace(tmp, path)

    def get(self, key: str) -> Optional[dict]:
        return self._responses.get(key)

    def orphans(self) -> list[dict]:
        """Sends whose response never arrived and that may have been paid: closed as unknown, or
        never closed (in flight when a process died or was stopped).

        A key sent twice with one stored response left one orphan: it stays charged in every
        later invocation, because that money is gone.
        """
        lost = list(self._maybe_paid)
        for key, sends in self._intents.items():
            lost.extend(sends[1:] if key in self._responses else sends)
        return lost

    def orphan_kinds(self) -> dict[str, int]:
        """How many orphans of each kind: 'unknown' (timed out or cut off after leaving) and
        'in_flight' (sent when a process died or was stopped)."""
        unknown = len(self._maybe_paid)
        return {"unknown": unknown, "in_flight": len(self.orphans()) - unknown}

    def orphan_spend(self, price: Optional[tuple[float, float]] = None):
        """What orphaned requests may have cost: each one request and its reserved worst case."""
        from .budget import Spend

        spent = Spend()
        for orphan in self.orphans():
            tokens = int(orphan.get("reserved_tokens", 0))
            spent = spent + Spend(1, tokens, tokens * price[1] / 1e6 if price else 0.0)
        return spent

    def _write_durably(self, lines: list[str]) -> None:
        """Append lines and fsync once: the unit of a group commit."""
        with self._lock:
            if self._handle is None:
                self._handle = self._shard.open("a")
            self._handle.write("".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def _record(self, entry: dict) -> None:
        key = entry["key"]
        if "text" in entry:
            self._responses[key] = entry
        elif entry.get("state") == "sent":
            self._intents.setdefault(key, []).append(entry)
        elif entry.get("state") == "failed" and self._intents.get(key):
            self._intents[key].pop()  # refused or unreachable: not paid
        elif entry.get("state") == "unknown" and self._intents.get(key):
            self._maybe_paid.append(self._intents[key].pop())  # closed, but maybe paid

    async def append_async(self, entry: dict) -> None:
        """Append durably from async code: concurrent callers share one fsync (group commit).

        Returns once the line is on disk; only then is the entry visible to `get`.
        """
        if self._committer is None or not self._committer.running():
            self._committer = _GroupCommit(self._write_durably)
        await self._committer.write(json.dumps(entry) + "\n")
        self._record(entry)

    async def mark_sent_async(self, key: str, row_id: str, reserved_tokens: int) -> None:
        await self.append_async({"key": key, "state": "sent", "id": row_id, "reserved_tokens": reserved_tokens})

    async def mark_failed_async(self, key: str) -> None:
        """The try was refused (an error status) or never connected: not paid."""
        await self.append_async({"key": key, "state": "failed"})

    async def mark_unknown_async(self, key: str) -> None:
        """The try left and its outcome cannot be known: it may have been paid."""
        await self.append_async({"key": key, "state": "unknown"})

    async def put_async(self, entry: dict) -> None:
        await self.append_async(entry)

    def put_many(self, entries: list[dict]) -> None:
        """Store responses durably from synchronous code, one fsync for all (a downloaded batch's answers)."""
        if entries:
            self._write_durably([json.dumps(entry) + "\n" for entry in entries])
            for entry in entries:
                self._record(entry)

    async def drain(self) -> None:
        """Wait for this loop's pending group commit, if any (see _GroupCommit.drain)."""
        if self._committer is not None and self._committer.running():
            await self._committer.drain()

    def __len__(self) -> int:
        return len(self._responses)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


class _GroupCommit:
    """Group commit on one event loop: whatever lines wait while an fsync runs go in the next one.

    The writer task runs only while lines wait and ends when none are left, so a worker that
    stops (a Ray actor taken down, a loop closed) never leaves a pending task behind, and no
    line is acknowledged before it is on disk.
    """

    def __init__(self, write: Callable[[list[str]], None]):
        self._write = write
        self._loop = asyncio.get_running_loop()
        self._waiting: list[tuple[str, asyncio.Future]] = []
        self._task: Optional[asyncio.Task] = None

    def running(self) -> bool:
        """Whether this committer belongs to the running event loop (one committer per loop)."""
        try:
            return asyncio.get_running_loop() is self._loop and not self._loop.is_closed()
        except RuntimeError:
            return False

    async def drain(self) -> None:
        """Wait until every line handed over is on disk (or failed): a stopping worker calls
        this so its loop closes with no commit pending, even when its own tasks were cancelled."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    async def write(self, line: str) -> None:
        future = self._loop.create_future()
        self._waiting.append((line, future))
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self._write, [line for line, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    for _, future in self._waiting:
                        if not future.done():
                            future.set_exception(exc)
                    self._waiting = []
                    raise
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
