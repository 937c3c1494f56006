"""Sharing the app's write budget among tenants by the writes each has left, so a fleet finishes together.

The app may write 70,000 times per 5 minutes across all tenants (our pace: 225/s), each tenant 20 times a
second (ours: 19/s). Without a rule, tenants writing at once split the app's budget evenly (each queues
the same number of batches), and a tenant with twice the work (a tenant with security defaults on
bridges its users, then disables them all) writes on alone at 19/s after the others are done: the fleet
waits for its long pole. With each tenant's rate in proportion to what it has left, none above 19/s (the
rest of the budget shared by the others the same way: water filling), every tenant that writes
finishes at about the same time, which is the least time for the whole.

Each writing client publishes its writes left in a Redis hash next to the pacing buckets (`<app>:left`,
tenant -> "<left> <unix time>"), at most once per REFRESH_S (of Graph time), and reads everyone's entries
back in the same round trip; entries older than STALE_S are a tenant that stopped and are ignored. The
share it computes is the rate of a per-tenant bucket (`<tenant>:share`) its writes reserve besides the
tenant's and the app's (pacing.py). Without Redis, or with no hint of writes left, there is no share
bucket: pacing works as before. Only writes are shared; it is a hint for pace, never a limit on what is
written, so a wrong estimate only costs time.
"""

from __future__ import annotations

import logging
import time

from migrations_engine.graph.pacing import KEY_PREFIX, Pacer, PacingRates

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # Graph seconds between two publications of a tenant's writes left
STALE_S = 15.0  # Graph seconds after which a tenant's entry no longer counts
MIN_SHARE = 1.0  # writes/s a tenant keeps even when others have far more left


def water_fill(left: dict[str, float], total: float, cap: float) -> dict[str, float]:
    """Rates in proportion to `left`, none above `cap`, summing to `total` where the caps allow."""
    rates: dict[str, float] = {}
    open_ = {k: max(v, 0.0) for k, v in left.items()}
    budget = total
    while open_:
        weight = sum(open_.values())
        if weight <= 0:
            for key in open_:
                rates[key] = min(cap, budget / len(open_))
            break
        capped = [k for k, v in open_.items() if budget * v / weight >= cap]
        if not capped:
            for key, value in open_.items():
                rates[key] = budget * value / weight
            break
        for key in capped:
            rates[key] = cap
            budget -= cap
            del open_[key]
    return rates


class FairShare:
    """One client's share of the app's writes. `expect(n)` tells it how many writes its tenant has left
    (the pipeline's per-user steps do), `wrote(n)` counts them down, `rate()` is the share to pace at
    (None: no sharing)."""

    def __init__(self, pacer: Pacer, app_id: str, tenant: str, rates: PacingRates) -> None:
        self.pacer = pacer  # its Redis connection, shared with the buckets
        self.key = f"{KEY_PREFIX}{app_id}:left"
        self.tenant = tenant
        self.rates = rates
        self.left: int | None = None
        self._rate: float | None = None
        self._at = float("-inf")
        self._published = False

    def expect(self, writes: int) -> None:
        self.left = max(0, int(writes))
        self._at = float("-inf")  # publish the new figure with the next write

    def wrote(self, writes: int) -> None:
        if self.left is not None:
            self.left = max(0, self.left - writes)

    async def rate(self) -> float | None:
        """This tenant's writes per second (time-scaled, as the buckets are), or None."""
        redis = self.pacer.shared_redis() if self.left else None
        if redis is None:  # no hint, the hint ran out, or no Redis: no share
            return None
        scale = self.rates.time_scale
        now = time.monotonic()
        if now - self._at < REFRESH_S / scale:
            return self._rate
        self._at = now
        try:
            entries = await self._publish(redis)
        except Exception as exc:  # noqa: BLE001 - Redis trouble: pace without a share, as before
            log.debug("fair share unavailable: %s", exc)
            self._rate = None
            return None
        wall = time.time()
        left: dict[str, float] = {}
        for tenant, value in entries.items():
            count, _, stamp = value.decode().partition(" ")
            if wall - float(stamp or 0) <= STALE_S / scale:
                left[tenant.decode()] = float(count)
        left[self.tenant] = float(self.left)
        shares = water_fill(left, self.rates.app_writes, self.rates.tenant_writes)
        self._rate = max(MIN_SHARE, shares[self.tenant]) * scale
        return self._rate

    async def _publish(self, redis) -> dict[bytes, bytes]:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(self.key, self.tenant, f"{self.left} {time.time()}")
        pipe.hgetall(self.key)
        pipe.expire(self.key, 3600)
        _, entries, _ = await pipe.execute()
        self._published = True
        return entries

    async def aclose(self) -> None:
        """Leave the hash (this tenant writes no more); before the pacer closes its connection."""
        redis = self.pacer.shared_redis() if self._published else None
        if redis is None:
            return
        try:
            await redis.hdel(self.key, self.tenant)
        except Exception:  # noqa: BLE001 - the entry goes stale by itself
            pass
