"""In-process pacing for one tenant's Graph calls: a token bucket for writes, a gap for CA calls.

Graph allows 20 user writes/s per app and tenant (3,000 per 150 s) and one Conditional Access request
per second per tenant, the latter answered with 429 *without* Retry-After when exceeded. Pacing keeps
us under both so throttling is the exception. (Pacing shared across workers comes with the throughput
engine; this bucket only spaces one client's own calls.)
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take(n)` waits until n are available."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: float = 1.0) -> None:
        n = min(n, self.burst)
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= n:
                    self._tokens -= n
                    return
                await asyncio.sleep((n - self._tokens) / self.rate)


def is_conditional_access(url: str) -> bool:
    """CA policies and named locations share Graph's 1 request/s per tenant limit."""
    return "/identity/conditionalAccess/" in url and not url.rstrip("/").endswith("/evaluate")
