"""Retrying within a time window: the one backoff every caller of a remote service shares.

A window of time, not a count of tries: an outage has a duration, so one shorter than the
window is waited out whatever its shape. Used by the teacher client (HTTP, asyncio) and by
the Ray Data UDFs that call Serve deployments (a lost replica).
"""

from __future__ import annotations

import random
import time
from typing import Optional


class RetryClock:
    """Jittered exponential backoff for one operation: `first_s` doubling to `max_s`, for
    `window_s` in all. `next_delay` gives how long to wait before the next try, or None when
    the window has passed and the caller should give up with its last failure."""

    def __init__(self, window_s: float, first_s: float = 0.5, max_s: float = 30.0):
        self.window_s = window_s
        self.deadline = time.monotonic() + window_s
        self.first_s, self.max_s = first_s, max_s
        self.tries = 0  # failed tries so far

    def next_delay(self, server_asks: Optional[float] = None) -> Optional[float]:
        """Record a failed try; the wait before the next (the server's Retry-After if given)."""
        self.tries += 1
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        backoff = min(self.max_s, self.first_s * 2 ** min(self.tries - 1, 16)) * (0.5 + random.random())
        delay = server_asks if server_asks is not None else backoff
        return min(delay, max(left, 0.01))
