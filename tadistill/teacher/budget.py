"""What every teacher shares: the hard budget, the purchase report, the output columns.

The budget caps requests, tokens and cost. A request reserves its worst case before it is
sent (the prompt's UTF-8 bytes bound its tokens from above; max_tokens bounds the
completion) and settles to what the response reports, or releases on failure: however many
workers share it, the limits cannot be passed. In a run it is one named Ray actor
(`ledger_actor`) that every teacher worker of the cluster reserves from.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional



@dataclass
class Spend:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: "Spend") -> "Spend":
        return Spend(self.requests + other.requests, self.tokens + other.tokens, self.cost + other.cost)

    def __sub__(self, other: "Spend") -> "Spend":
        return Spend(self.requests - other.requests, self.tokens - other.tokens, self.cost - other.cost)


class Budget:
    """Limits in requests, tokens and cost (None: no limit on that one); thread-safe."""

    def __init__(self, requests: int, tokens: Optional[int] = None, cost: Optional[float] = None,
                 already: Optional[Spend] = None):
        self.limits = (requests, tokens, cost)
        self.spent = already or Spend()
        self.pending = 0  # reservations of requests in flight, held at their worst case
        self.obtained = 0  # outputs this invocation got (paid or from the response store), as they come
        self.trouble: Optional[dict] = None  # the latest retried failure: what, first and last seen
        self.sending = 0  # tries on the wire now, in every worker (their outcome not yet logged)
        self.halted = False  # a request of this purchase gave up: no new try leaves
        self._lock = threading.Lock()

    def _fits(self, spend: Spend) -> bool:
        requests, tokens, cost = self.limits
        total = self.spent + spend
        return (total.requests <= requests and (tokens is None or total.tokens <= tokens)
                and (cost is None or total.cost <= cost + 1e-12))

    def reserve(self, tokens: int = 0, cost: float = 0.0) -> bool:
        """Reserve one request and its exact tokens and cost; False when it does not fit."""
        with self._lock:
            spend = Spend(1, tokens, cost)
            if not self._fits(spend):
                return False
            self.spent = self.spent + spend
            return True

    def try_reserve(self, tokens: int = 0, cost: float = 0.0, settles: bool = True) -> str:
        """Reserve one request and its worst-case tokens and cost (`settles`: a later settle or
        release replaces it): 'reserved'; 'wait' when it does not fit now but requests in flight
        hold worst cases that will settle lower; 'exhausted' when nothing in flight could make room."""
        with self._lock:
            spend = Spend(1, tokens, cost)
            if self._fits(spend):
                self.spent = self.spent + spend
                self.pending += int(settles)
                return "reserved"
            room = Spend(1, 0, 0.0) if self.pending else spend  # what settling could free: tokens and cost
            return "wait" if self.pending and self._fits(room) else "exhausted"

    def try_reserve_each(self, worst: list[tuple[int, float, bool]]) -> list[str]:
        """try_reserve for many requests in order, in one call (one message to the ledger actor): each
        (tokens, cost, settles); an answer per request (a Batch API purchase reserves a batch at once)."""
        return [self.try_reserve(tokens, cost, settles) for tokens, cost, settles in worst]

    def settle(self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float) -> None:
        """Replace a reservation's worst case by what the request really used."""
        with self._lock:
            self.spent = self.spent - Spend(0, reserved_tokens - tokens, reserved_cost - cost)
            self.pending = max(0, self.pending - 1)

    def release(self, tokens: int = 0, cost: float = 0.0) -> None:
        """Give back a reservation whose request was not sent or not paid."""
        with self._lock:
            self.spent = self.spent - Spend(1, tokens, cost)
            self.pending = max(0, self.pending - 1)

    def settle_each(self, settled: list, released: list) -> None:
        """Many settles (reserved tokens, reserved cost, tokens, cost) and releases (tokens, cost) in one call."""
        for args in settled:
            self.settle(*args)
        for args in released:
            self.release(*args)

    def give_back_beyond(self, requests: int, tokens: int, cost: float) -> int:
        """Lower the spend to what the response ledger shows was bought (never raise it): a
        worker that died (its node lost) leaves reservations it can no longer settle or
        release. Called when no request is in flight. Returns the requests given back."""
        with self._lock:
            truth = Spend(requests, tokens, cost)
            if self.spent.requests <= truth.requests:
                return 0
            given = self.spent.requests - truth.requests
            self.spent = Spend(truth.requests, min(self.spent.tokens, truth.tokens), min(self.spent.cost, truth.cost))
            return given

    def begin_try(self) -> bool:
        """A try is about to leave (False: the purchase is halting, it must not)."""
        with self._lock:
            if self.halted:
                return False
            self.sending += 1
            return True

    def end_try(self) -> None:
        """A try's outcome is in the response log."""
        with self._lock:
            self.sending = max(0, self.sending - 1)

    def halt(self) -> None:
        """A request gave up: every worker stops sending, and the purchase ends once the tries on
        the wire have come back (so none of them is left in doubt, charged as maybe paid)."""
        with self._lock:
            self.halted = True

    def reopen(self) -> None:
        """A new purchase begins: tries may leave again."""
        with self._lock:
            self.halted = False

    def note_obtained(self) -> None:
        """One more output in hand: the purchase's progress counts these, not reservations."""
        with self._lock:
            self.obtained += 1
            self.trouble = None  # a success ends a streak of failures

    def note_trouble(self, failure: str) -> None:
        """A request failed and will be retried: the driver shows it while it lasts."""
        with self._lock:
            now = time.time()
            since = self.trouble["since"] if self.trouble else now
            self.trouble = {"failure": failure, "since": since, "last": now}

    def snapshot(self) -> dict:
        with self._lock:
            requests, tokens, cost = self.limits
            return {"requests": self.spent.requests, "tokens": self.spent.tokens, "cost": round(self.spent.cost, 6),
                    "limit_requests": requests, "limit_tokens": tokens, "limit_cost": cost,
                    "obtained": self.obtained, "trouble": dict(self.trouble) if self.trouble else None,
                    "sending": self.sending, "halted": self.halted}

    @property
    def used(self) -> int:
        return self.spent.requests

    @property
    def left(self) -> int:
        return self.limits[0] - self.spent.requests


def ledger_actor(name: str, requests: int, tokens: Optional[int], cost: Optional[float], already: Spend):
    """The run's budget as one named Ray actor: every teacher worker in the cluster reserves from it.

    Created fresh by each invocation of a run (its state is rebuilt from the run directory),
    so a crashed driver's actor never carries a stale count.
    """
    import ray

    actor_cls = ray.remote(num_cpus=0, max_concurrency=64)(Budget)
    for _ in range(100):  # an actor left by an earlier invocation in this cluster: replace it
        try:
            ray.kill(ray.get_actor(name))
        except ValueError:
            break
        time.sleep(0.05)
    # The caller must keep the handle: the actor lives as long as a handle to it does.
    from ..services import on_drivers_node

    return actor_cls.options(name=name, scheduling_strategy=on_drivers_node()).remote(requests, tokens, cost, already)


@dataclass
class PurchaseReport:
    requested: int = 0
    bought: int = 0
    cache_hits: int = 0
    sent: int = 0
    not_bought_budget: int = 0
    unextractable_answers: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)  # Batch API jobs of the purchase (teacher/batch.py)
