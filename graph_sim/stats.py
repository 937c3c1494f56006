"""Running counters for ``GET /_sim/stats``: what a throughput benchmark reads while and after it runs.

Counters are bumped as each answer is produced, never derived from the request log: the log is a ring
that overflows long before a 40,000-user benchmark ends, and scanning it per read would be slow.
"""

from __future__ import annotations

import time

from graph_sim.clock import Clock
from graph_sim.graph_http import GraphResponse

# Decision.limit names of graph_sim.throttle, in the order the stats list them.
THROTTLE_LIMITS = ("writes", "tenant_writes", "app_writes", "ru", "app_ru", "ca", "reports")
PER_USER_STATES = ("disabled", "enabled", "enforced")


class TenantStats:
    """One tenant's counters."""

    __slots__ = (
        "requests",
        "batch_items",
        "by_status",
        "batch_status",
        "throttled",
        "fault_429",
        "writes_effective",
        "per_user_changes",
        "disabled_per_second",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.batch_items = 0
        self.by_status: dict[int, int] = {}
        self.batch_status: dict[int, int] = {}
        self.throttled = dict.fromkeys(THROTTLE_LIMITS, 0)
        self.fault_429 = 0
        self.writes_effective = 0
        self.per_user_changes = dict.fromkeys(PER_USER_STATES, 0)
        self.disabled_per_second: dict[int, int] = {}

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "batch_items": self.batch_items,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "batch_status": {str(k): v for k, v in sorted(self.batch_status.items())},
            "throttled": dict(self.throttled),
            "fault_429": self.fault_429,
            "writes_effective": self.writes_effective,
            "per_user_changes": dict(self.per_user_changes),
            "disabled_series": [[s, n] for s, n in sorted(self.disabled_per_second.items())],
        }


class SimStats:
    """Fleet-wide and per-tenant counters since the server started (or since the last ``/_sim/reset``).

    - ``requests``: top-level HTTP requests to Graph (a ``$batch`` counts once); ``batch_items``: items
      inside ``$batch`` requests;
    - ``by_status`` (per tenant): the status of every operation, i.e. every top-level request other than a
      ``$batch`` and every batch item; a ``$batch``'s own status goes to ``batch_status``;
    - ``throttled``: 429s decided by the throttle model, by ``Decision.limit``, top-level and batch items;
      ``fault_429``: 429s injected by fault knobs or fault rules, counted apart;
    - ``writes_effective``: writes that changed (or would have changed) state, dropped answers included;
    - ``per_user_changes``: Graph PATCHes of ``authentication/requirements`` that changed a user's
      per-user MFA state, by the new state; ``disabled_series``: those that set ``disabled``, per whole
      simulated second since ``started``.
    """

    def __init__(self, sim_clock: Clock, tenant_ids=()):
        self.clock = sim_clock
        self.started = sim_clock.monotonic()
        self.real_started = time.monotonic()
        self.requests = 0
        self.batch_items = 0
        self.throttled = dict.fromkeys(THROTTLE_LIMITS, 0)
        self.fault_429 = 0
        self.tenants: dict[str, TenantStats] = {tid: TenantStats() for tid in tenant_ids}

    def mark_started(self) -> None:
        """Start the clocks again (the server is listening now)."""
        self.started = self.clock.monotonic()
        self.real_started = time.monotonic()

    def _tenant(self, tenant_id: str | None) -> TenantStats | None:
        if tenant_id is None:
            return None
        ts = self.tenants.get(tenant_id)
        if ts is None:
            ts = self.tenants[tenant_id] = TenantStats()
        return ts

    def record(self, tenant_id: str | None, resp: GraphResponse, *, item: bool, batch: bool = False) -> None:
        """Count one answer: a top-level request (``item=False``; ``batch=True`` for a ``$batch``
        envelope) or a ``$batch`` item. ``tenant_id`` is None when no valid token named a known tenant."""
        ts = self._tenant(tenant_id)
        if item:
            self.batch_items += 1
        else:
            self.requests += 1
        limit = resp.throttled
        if limit:
            self.throttled[limit] = self.throttled.get(limit, 0) + 1
        fault_429 = resp.status == 429 and bool(resp.fault)
        if fault_429:
            self.fault_429 += 1
        if ts is None:
            return
        if item:
            ts.batch_items += 1
        else:
            ts.requests += 1
        counts = ts.batch_status if batch else ts.by_status
        counts[resp.status] = counts.get(resp.status, 0) + 1
        if limit:
            ts.throttled[limit] = ts.throttled.get(limit, 0) + 1
        if fault_429:
            ts.fault_429 += 1
        if resp.write_effective:
            ts.writes_effective += 1

    def per_user_change(self, tenant_id: str, state: str) -> None:
        ts = self._tenant(tenant_id)
        ts.per_user_changes[state] += 1
        if state == "disabled":
            second = int(self.clock.monotonic() - self.started)
            ts.disabled_per_second[second] = ts.disabled_per_second.get(second, 0) + 1

    def as_dict(self, tenant_ids: list[str] | None = None) -> dict:
        """The ``/_sim/stats`` body; ``tenant_ids`` limits the ``tenants`` part."""
        ids = self.tenants if tenant_ids is None else [t for t in tenant_ids if t in self.tenants]
        return {
            "time_scale": self.clock.scale,
            "clock": self.clock.monotonic(),
            "started": self.started,
            "cpu_seconds": time.process_time(),
            "wall_seconds": time.monotonic() - self.real_started,
            "requests": self.requests,
            "batch_items": self.batch_items,
            "throttled": dict(self.throttled),
            "fault_429": self.fault_429,
            "tenants": {tid: self.tenants[tid].as_dict() for tid in ids},
        }
