"""The simulator's single source of time.

Everything that reads the clock or sleeps goes through here, so that a time-scale factor
(run a 5-minute throttle window in 5 seconds) can be added in one place later.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

SCALE = 1.0  # seconds of simulated time per second of real time; only 1.0 is used today


def monotonic() -> float:
    """Monotonic seconds: used for throttle windows, timelines and replication lag."""
    return time.monotonic() * SCALE


def epoch() -> float:
    """Wall-clock seconds since the epoch: used for token iat/nbf/exp."""
    return time.time()


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None = None) -> str:
    """Graph's timestamp form: ``2024-05-01T12:00:00.1234567Z`` (7 fractional digits)."""
    dt = dt or utcnow()
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def aad_timestamp() -> str:
    """The login service's error timestamp form: ``2024-05-01 12:00:00Z``."""
    return utcnow().strftime("%Y-%m-%d %H:%M:%SZ")


async def sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds / SCALE)
