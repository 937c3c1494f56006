"""The simulator's single source of time, and its time scale.

A benchmark cannot wait out Graph's real windows (3,000 writes per 150 s per tenant, 70,000 per 5 min per
app), so a simulator can run its *simulated* time ``scale`` times faster than real time
(``python -m graph_sim serve --time-scale S``): every simulated duration takes ``1/S`` of it in real
seconds. Each ``Simulator`` owns a ``Clock``; two simulators in one process may run at different scales.

Simulated seconds (what ``Clock.monotonic`` returns and ``Clock.sleep`` takes):
- throttle windows and the waits they compute (3,000 writes per 150 s becomes per 15 real s at S=10,
  the CA 1 request/s becomes 1 per 0.1 real s);
- the latency and timeout-hold fault knobs (150 ms of latency is 15 ms real at S=10), replication lag,
  the ``retry_after_s`` knob and fault rules' ``retry_after`` (as configured: simulated);
- timeline ``t``, the request log's ``t``, ``/_sim`` ``clock``, ``started``, coverage ``since``/``until``,
  ``requires-mfa?at=`` and the stats' per-second series.

Real seconds (what a client, msal or the SDK compares with its own clock):
- every ``Retry-After`` header: a simulated wait is divided by the scale (``Clock.to_real``) before it is
  formatted, so an unmodified client that honours it waits the right amount of simulated time;
- token ``iat``/``nbf``/``exp`` (``epoch``) and lifetimes, ISO timestamps in bodies, error envelopes and
  the request log's ``wall`` (``utcnow``/``iso``);
- the stats' ``cpu_seconds`` and ``wall_seconds``.

The module-level ``monotonic``/``sleep`` are the scale-1 clock, for code outside a simulator.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime


def validate_scale(value: object) -> float:
    """The scale as a float; anything that is not a finite number > 0 raises ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"time scale must be a number > 0, got {value!r}")
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"time scale must be a number > 0, got {value!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"time scale must be a finite number > 0, got {value!r}")
    return scale


class Clock:
    """Simulated time running ``scale`` simulated seconds per real second."""

    __slots__ = ("scale",)

    def __init__(self, scale: float = 1.0):
        self.scale = validate_scale(scale)

    def monotonic(self) -> float:
        """Simulated monotonic seconds: throttle windows, timelines, replication lag, the request log."""
        return time.monotonic() * self.scale

    def to_real(self, simulated_seconds: float) -> float:
        """A simulated duration in real seconds (what a ``Retry-After`` header must say)."""
        return simulated_seconds / self.scale

    async def sleep(self, simulated_seconds: float) -> None:
        if simulated_seconds > 0:
            await asyncio.sleep(simulated_seconds / self.scale)


REAL = Clock(1.0)


def monotonic() -> float:
    """Scale-1 monotonic seconds (a simulator's own clock is ``sim.clock``)."""
    return time.monotonic()


async def sleep(seconds: float) -> None:
    await REAL.sleep(seconds)


def epoch() -> float:
    """Wall-clock seconds since the epoch (real, never scaled): token iat/nbf/exp."""
    return time.time()


def utcnow() -> datetime:
    return datetime.now(UTC)


_second_prefix: tuple[int, str] = (-1, "")


def _prefix(second: int) -> str:
    """``YYYY-mm-ddTHH:MM:SS`` for a whole epoch second, formatted once per second (every log entry and
    every error envelope carries one, and strftime is the costly part)."""
    global _second_prefix
    cached_second, text = _second_prefix
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_prefix = (second, text)
    return text


def iso(dt: datetime | None = None) -> str:
    """Graph's timestamp form: ``2024-05-01T12:00:00.1234567Z`` (7 fractional digits)."""
    if dt is not None:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"
    now = time.time_ns() // 1000
    second, micro = divmod(now, 1_000_000)
    return f"{_prefix(second)}.{micro:06d}0Z"


def iso_seconds() -> str:
    """``2024-05-01T12:00:00`` (the ``date`` of a Graph error's innerError)."""
    return _prefix(time.time_ns() // 1_000_000_000)


def aad_timestamp() -> str:
    """The login service's error timestamp form: ``2024-05-01 12:00:00Z``."""
    return utcnow().strftime("%Y-%m-%d %H:%M:%SZ")
