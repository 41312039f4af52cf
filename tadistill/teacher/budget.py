"""What every teacher shares: the hard request budget, the purchase report, the output columns."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# One row per teacher output; k numbers several outputs for one question (recorded teachers).
TEACHER_COLUMNS = [
    "id", "k", "request_key", "model", "text", "prompt_tokens", "completion_tokens",
    "finish_reason", "source", "cached",
]


class RequestBudget:
    """A hard cap on requests: reserve before sending, release if the request fails."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.used -= 1

    @property
    def left(self) -> int:
        return self.limit - self.used


@dataclass
class PurchaseReport:
    requested: int = 0
    bought: int = 0
    cache_hits: int = 0
    sent: int = 0
    not_bought_budget: int = 0
    unextractable_answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
