"""Pacing every Graph call to Graph's documented limits, shared by every worker through Redis.

Graph throttles per app and tenant (20 user writes/s as 3,000 per 150 s; resource units per 10 s by
tenant size; 5 report requests per 10 s), per tenant (1 Conditional Access request per second, refused
*without* Retry-After) and per app across tenants (70,000 writes per 5 min; 150,000 RU per 20 s). When
our own calls stay under those numbers, throttling is the exception, not the pacing mechanism, and
the 429s that remain (other apps in the tenant, Graph's own load) are handled per request and per
batch item with their Retry-After.

Each limit is a bucket in the generic cell rate algorithm (GCRA): one number per bucket, the
"theoretical arrival time". A request *reserves* its cost in every bucket it touches in one atomic
step and is told how long to wait before sending, so callers queue in order instead of polling. With
Redis the reservation is one Lua script (the buckets of every worker on every machine are the same
keys, and Redis's clock is the only clock); without Redis, or while it is unreachable, the same
arithmetic runs in-process. (Rate-limit libraries such as `limits` and `pyrate-limiter` check one
limit at a time and cannot reserve several atomically, which a batch that counts against a tenant's
writes, the app's writes and two RU budgets needs.)

Rates sit a little under Graph's numbers, and each burst is sized so that burst + rate x window stays
within the window's limit: a sliding window cannot be exceeded even by a full burst. The margin left
(3-10 %) absorbs requests that reach Graph closer together than they were sent. The reports' limit is
small (5 requests per 10 s), and a rate that never exceeds it would send one request now and one every
2.5 s; it is kept instead as a sliding-window log of the requests booked (`Bucket.window`): 5 at once,
the next ones a window later, the window 5 % longer than Graph's.

Graph also says how full its limits are (throttle_headers.py reads the identity-and-access headers):
a response with `x-ms-throttle-limit-percentage` (sent only above 0.8 of a limit) marks the tenant's RU
bucket *slow*, and its write bucket for a write at 0.95 or more (our own writes alone reach 0.96 of
their 150 s window, and 0.8 after two minutes of one tenant), and a 429's `x-ms-throttle-scope` marks
the bucket it names (the tenant's or, for an Application scope, the app's shared one). A slow bucket
runs at `SLOW_FACTOR` of its rate, for every worker (the mark is a Redis key next to the bucket's,
`<bucket>:slow`, read by the same reservation script). The next regular response that reports its cost
without a limit percentage clears the mark; a mark nobody renews expires after `SLOW_TTL_S`. So our
pace drops before a 429 when something else (another app, another console, Graph's own accounting)
fills a limit, and comes back as soon as Graph stops saying so. Our own pace alone stays under 0.96 of
every limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from migrations_engine.graph.throttle_headers import feedback

log = logging.getLogger(__name__)

KEY_PREFIX = "msp:pace:"
LATE_S = 0.05  # a request woken this much after its slot books another
SLOW_SUFFIX = ":slow"
# A bucket Graph says is over 0.8 of its limit runs at a quarter of its rate: after the first 0.8 of a
# sliding window, the last 0.2 lasts until the window's oldest requests expire even when something else
# adds a third to our pace. Marks nobody renews expire (simulated time: divided by the time scale).
SLOW_FACTOR, SLOW_TTL_S = 0.25, 30.0

# Graph's documented resource units per 10 s per app and tenant, by the tenant's size.
RU_PER_10S = {"S": 3500, "M": 5000, "L": 8000}
APP_RU_PER_20S = 150_000
# RU budgets: 85 % of a window's units spread over the window plus 5 % as a burst, so even a full burst
# leaves 10 % for requests that arrive closer together than they were sent.
RU_RATE_SHARE, RU_BURST_SHARE = 0.85, 0.05
REPORT_WINDOW_S = 10.5  # report requests: 5 in any 10.5 s (Graph: 5 per 10 s per app and tenant)
REPORT_JITTER_S = 0.1  # wall seconds more: a loaded machine delays some sends of a burst, not the next


def size_class(user_count: int | None) -> str:
    """Graph's tenant size for RU limits: S under 50 users, M up to 500, L above (unknown = S)."""
    if not user_count or user_count < 50:
        return "S"
    return "M" if user_count <= 500 else "L"


@dataclass(frozen=True)
class Bucket:
    """`rate` tokens per second, up to `burst` at once, under a Redis key. A `shared` bucket is the
    app's, drawn on by every tenant.

    With a `window`, it is a sliding-window log instead: at most `burst` requests in any `window` seconds
    (the times of the requests booked are kept, `rate` is unused). A small count limit such as the
    reports' 5 per 10 s is met exactly that way (5 at once, the next 5 one window later), where a rate
    and a burst that never exceed it (1 at once, then 0.4/s) take twice as long for 9 requests."""

    key: str
    rate: float
    burst: float
    shared: bool = False
    window: float = 0.0


@dataclass(frozen=True)
class PacingRates:
    """Rates (per second) our own calls keep to. `time_scale` multiplies them all: it is for Graph
    simulators that run time faster (the benchmark); against Microsoft it is 1."""

    tenant_writes: float = 19.0  # Graph: 20/s per app + tenant (3,000 per 150 s)
    app_writes: float = 225.0  # Graph: 70,000 per 5 min per app (233/s)
    ca_requests: float = 0.9  # Graph: 1/s per tenant, 429 without Retry-After (10 % margin for jitter)
    report_requests: float = 0.5  # Graph: 5 per 10 s per app + tenant, kept as a log (REPORT_WINDOW_S)
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tenant_writes", "app_writes", "ca_requests", "report_requests", "time_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"pacing rate {name} must be > 0")

    @property
    def slow_ttl_s(self) -> float:
        return SLOW_TTL_S / self.time_scale

    def buckets(
        self,
        app_id: str,
        tenant: str,
        *,
        writes: int,
        ru: int,
        family: str | None,
        user_count: int | None,
        share: float | None = None,
    ) -> list[tuple[Bucket, float]]:
        """The buckets one request counts against, each with its cost. `share`: the tenant's share of the
        app's writes per second (fair_share.py), a bucket of its own for a write."""
        s = self.time_scale
        t = f"{KEY_PREFIX}{app_id}:{tenant}:"
        a = f"{KEY_PREFIX}{app_id}:"
        ru_limit = RU_PER_10S[size_class(user_count)]
        ru_rate, ru_burst = RU_RATE_SHARE * s, RU_BURST_SHARE
        claims = [
            (Bucket(t + "ru", ru_rate * ru_limit / 10, ru_burst * ru_limit), float(ru)),
            (Bucket(a + "ru", ru_rate * APP_RU_PER_20S / 20, ru_burst * APP_RU_PER_20S, True), float(ru)),
        ]
        if writes:
            # Burst 20 = one full $batch; 19/s x 150 s + 20 = 2,870 < 3,000.
            claims.append((Bucket(t + "writes", self.tenant_writes * s, 20), float(writes)))
            # Burst 20 here too: the app's budget is spread evenly over its tenants' batches.
            claims.append((Bucket(a + "writes", self.app_writes * s, 20, True), float(writes)))
            if share:
                claims.append((Bucket(t + "share", share, 20), float(writes)))
        if family == "ca":
            claims.append((Bucket(t + "ca", self.ca_requests * s, 1), 1.0))
        elif family == "reports":
            # 5 per 10 s, as Graph counts them; the window 5 % longer, and a tenth of a second more of
            # our own time (not scaled), for requests that arrive closer together than they were sent.
            window = REPORT_WINDOW_S / s + REPORT_JITTER_S
            claims.append((Bucket(t + "report-log", self.report_requests * s, 5, window=window), 1.0))
        return claims


def request_family(url: str) -> str | None:
    """Which per-tenant request limit a URL falls under, if any."""
    if "/identity/conditionalAccess/" in url and not url.split("?")[0].rstrip("/").endswith("/evaluate"):
        return "ca"  # CA policies and named locations share the 1 request/s limit
    if "/reports/" in url or "/auditLogs/" in url:
        # Identity and access reports share one limit: the registration report, sign-ins and directory
        # audits alike (throttling-limits, "Identity and access reports service limits").
        return "reports"
    return None


def request_ru(method: str, url: str, *, items: int = 0) -> int:
    """Graph's resource-unit cost: GET users 2 (1 with $select), subscribedSkus 3, other GETs 1, each
    write 1; a $batch costs what its items cost (ours hold single-object GETs or writes: 1 each)."""
    if items:
        return items
    path, _, query = url.partition("?")
    path = path.rstrip("/")
    if method.upper() == "GET":
        if path.endswith("/users"):
            return 1 if "select" in query else 2
        if path.endswith("/subscribedSkus"):
            return 3
    return 1


# --- the arithmetic, in-process ----------------------------------------------------------------


class LocalBuckets:
    """GCRA buckets in this process (shared by every client in it). Used without Redis."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._log: dict[str, list[float]] = {}  # a window bucket's booked request times, in order
        self._slow: dict[str, float] = {}  # bucket key -> when its slow mark expires
        self._lock = threading.Lock()

    def reserve(self, claims: Sequence[tuple[Bucket, float]], now: float | None = None) -> float:
        """Reserve every claim at the earliest instant all allow; return the seconds to wait."""
        with self._lock:
            now = time.monotonic() if now is None else now
            rates = [b.rate * (SLOW_FACTOR if self._slow.get(b.key, 0) > now else 1) for b, _ in claims]
            start = now
            for (bucket, cost), rate in zip(claims, rates, strict=True):
                if bucket.window:
                    log = self._log.setdefault(bucket.key, [])
                    del log[: sum(1 for at in log if at <= now - bucket.window)]
                    start = max(start, log_earliest(log, bucket, cost, now))
                    continue
                tat = max(self._tat.get(bucket.key, now), now)
                start = max(start, tat + (cost - bucket.burst) / rate)
            for (bucket, cost), rate in zip(claims, rates, strict=True):
                if bucket.window:
                    self._log[bucket.key].extend([start] * int(cost))
                    continue
                tat = max(self._tat.get(bucket.key, now), start)
                self._tat[bucket.key] = tat + cost / rate
            return start - now

    def mark(self, slow: Sequence[Bucket], fine: Sequence[Bucket], ttl: float) -> None:
        with self._lock:
            until = time.monotonic() + ttl
            self._slow.update((b.key, until) for b in slow)
            for b in fine:
                self._slow.pop(b.key, None)

    def slowed(self, keys: Sequence[str]) -> set[str]:
        now = time.monotonic()
        return {k for k in keys if self._slow.get(k, 0) > now}

    def clear(self) -> None:
        with self._lock:
            self._tat.clear()
            self._log.clear()
            self._slow.clear()


def log_earliest(log: Sequence[float], bucket: Bucket, cost: float, now: float) -> float:
    """The earliest time, not before the last request booked, at which `cost` more requests keep at most
    `bucket.burst` in any `bucket.window` (`log`: the booked times still inside a window of now)."""
    limit, need = int(bucket.burst), int(cost)
    earliest = max(now, log[-1]) if log else now
    if len(log) + need > limit:
        earliest = max(earliest, log[len(log) + need - limit - 1] + bucket.window)
    return earliest


LOCAL = LocalBuckets()

# The same arithmetic in Redis, atomically, on Redis's clock. KEYS: n buckets, then their n slow marks;
# ARGV: rate, burst, cost, window per bucket, then the slow factor. A bucket with a window is a sorted set
# of booked request times (members made unique by the booking's time and the set's size); the others
# hold their theoretical arrival time. Returns the wait in seconds as a string (Lua numbers come back
# truncated to integers) and one '1' or '0' per bucket: whether it is marked slow.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local factor = tonumber(ARGV[4*n+1])
local start = now
local tats, rates, slowed = {}, {}, ''
for i = 1, n do
  local rate, burst, cost = tonumber(ARGV[4*i-3]), tonumber(ARGV[4*i-2]), tonumber(ARGV[4*i-1])
  local window = tonumber(ARGV[4*i])
  if redis.call('EXISTS', KEYS[n+i]) == 1 then
    rate = rate * factor
    slowed = slowed .. '1'
  else
    slowed = slowed .. '0'
  end
  rates[i] = rate
  local earliest
  if window > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    local booked = redis.call('ZCARD', KEYS[i])
    earliest = now
    if booked > 0 then
      local last = tonumber(redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')[2])
      if last > earliest then earliest = last end
    end
    local over = booked + cost - burst
    if over > 0 then
      local oldest = tonumber(redis.call('ZRANGE', KEYS[i], over - 1, over - 1, 'WITHSCORES')[2])
      if oldest + window > earliest then earliest = oldest + window end
    end
  else
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    tats[i] = tat
    earliest = tat + (cost - burst) / rate
  end
  if earliest > start then start = earliest end
end
for i = 1, n do
  local window = tonumber(ARGV[4*i])
  if window > 0 then
    local booked = redis.call('ZCARD', KEYS[i])
    for k = 1, tonumber(ARGV[4*i-1]) do
      redis.call('ZADD', KEYS[i], start, string.format('%.6f:%.6f:%d', start, now, booked + k))
    end
    redis.call('PEXPIRE', KEYS[i], math.ceil((start - now + window) * 1000) + 1000)
  else
    local tat = tats[i]
    if tat < start then tat = start end
    tat = tat + tonumber(ARGV[4*i-1]) / rates[i]
    redis.call('SET', KEYS[i], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
  end
end
return {string.format('%.6f', start - now), slowed}
"""


class Pacer:
    """Reserves a request's costs and sleeps until it may be sent. One per Graph client (event loop)."""

    _warned_at = 0.0
    _redis_down_until = 0.0  # after a failure, pace in-process for a few seconds before trying again

    def __init__(self, redis_url: str = "", *, follow_headers: bool = True) -> None:
        self.redis_url = redis_url
        self._redis = None
        self._script = None
        self.waited = 0.0  # seconds spent waiting for the buckets (for progress and benchmarks)
        # Whether Graph's throttling headers slow buckets down (module docstring); off only to compare.
        self.follow_headers = follow_headers
        self.slowed: set[str] = set()  # bucket keys last seen marked slow (so only those are cleared)
        self.marks = 0  # slow marks this pacer set (for tests and benchmarks)

    async def acquire(self, claims: Sequence[tuple[Bucket, float]]) -> None:
        """The tenant's own buckets first, then, once the tenant's slot has come, the app's shared ones.

        Reserving both at once would book the app's budget at the tenant's future slot and so push every
        other tenant behind it (a shared bucket has one "next free" instant, not a calendar); asking the
        app only when a request is about to go keeps tenants independent."""
        for group in ([c for c in claims if not c[0].shared], [c for c in claims if c[0].shared]):
            if group:
                await self._wait_for_slot(group)

    async def _wait_for_slot(self, group: Sequence[tuple[Bucket, float]]) -> None:
        for _ in range(3):
            wait = await self._reserve(group)
            if wait <= 0:
                return
            self.waited += wait
            due = time.monotonic() + wait
            await asyncio.sleep(wait)
            if time.monotonic() - due <= LATE_S:
                return
            # Woken late (the loop was busy): sent now, this request would land on top of the slots
            # booked after it. Book again; the slot missed is capacity left unused, never overrun.

    async def observe(self, claims: Sequence[tuple[Bucket, float]], answers, ttl: float = SLOW_TTL_S) -> None:
        """Mark or clear the request's buckets as its answers' throttling headers say (throttle_headers):
        `answers` are (status, headers) pairs, one per response or `$batch` item."""
        if not self.follow_headers:
            return
        slow, fine = feedback(claims, answers)
        fine = [b for b in fine if b.key in self.slowed]
        if not slow and not fine:
            return
        self.slowed.difference_update(b.key for b in fine)
        self.slowed.update(b.key for b in slow)
        self.marks += len(slow)
        if self._redis_usable():
            try:
                await self._mark_in_redis(slow, fine, ttl)
                return
            except Exception as exc:  # noqa: BLE001 - Redis down: mark in-process rather than stop
                self._redis_failed(exc)
        LOCAL.mark(slow, fine, ttl)

    def shared_redis(self):
        """The pacing Redis connection (other pace kept in Redis, fair_share.py, uses it too), or None
        without Redis or while it is unreachable."""
        return self._connect() if self._redis_usable() else None

    def _redis_usable(self) -> bool:
        return bool(self.redis_url) and time.monotonic() >= Pacer._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        Pacer._redis_down_until = time.monotonic() + 5
        self._warn(exc)

    async def _reserve(self, claims: Sequence[tuple[Bucket, float]]) -> float:
        if self._redis_usable():
            try:
                return await self._reserve_in_redis(claims)
            except Exception as exc:  # noqa: BLE001 - Redis down: pace in-process rather than stop
                self._redis_failed(exc)
        keys = [b.key for b, _ in claims]
        self.slowed.difference_update(keys)
        self.slowed.update(LOCAL.slowed(keys))
        return LOCAL.reserve(claims)

    def _connect(self):
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
            self._script = self._redis.register_script(_RESERVE)
        return self._redis

    async def _reserve_in_redis(self, claims: Sequence[tuple[Bucket, float]]) -> float:
        self._connect()
        args: list[str] = []
        for bucket, cost in claims:
            args += [repr(bucket.rate), repr(bucket.burst), repr(cost), repr(bucket.window)]
        keys = [b.key for b, _ in claims]
        marks = [k + SLOW_SUFFIX for k in keys]
        wait, slowed = await self._script(keys=keys + marks, args=[*args, repr(SLOW_FACTOR)])
        for key, flag in zip(keys, slowed.decode(), strict=True):
            (self.slowed.add if flag == "1" else self.slowed.discard)(key)
        return float(wait)

    async def _mark_in_redis(self, slow: Sequence[Bucket], fine: Sequence[Bucket], ttl: float) -> None:
        pipe = self._connect().pipeline(transaction=False)
        for b in slow:
            pipe.set(b.key + SLOW_SUFFIX, "1", px=max(1, round(ttl * 1000)))
        if fine:
            pipe.delete(*(b.key + SLOW_SUFFIX for b in fine))
        await pipe.execute()

    @classmethod
    def _warn(cls, exc: Exception) -> None:
        now = time.monotonic()
        if now - cls._warned_at > 60:
            cls._warned_at = now
            log.warning("Graph pacing falls back to this process (Redis unreachable: %s)", exc)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        self._redis = self._script = None
