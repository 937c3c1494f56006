"""Graph's documented throttles as sliding windows (exact counts, Retry-After from when a window frees).

Identity & access (per app + tenant): resource units per 10 s by tenant size, 3,000 writes per 150 s;
per tenant across apps: 18,000 writes per 5 min; per app across tenants: 150,000 RU per 20 s and
70,000 writes per 5 min. Conditional Access policies and named locations: 1 request per second per
tenant, and that 429 carries no Retry-After. Reports (userRegistrationDetails): 5 requests per 10 s per
app per tenant. A throttled request consumes nothing and changes nothing.

Windows, ``now`` and ``Decision.retry_after`` are in the simulator's simulated seconds (see
``graph_sim.clock``); the caller turns a wait into real seconds before it becomes a ``Retry-After``.

A decision also carries the identity-and-access service's response headers
(https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits), for requests
to that service (no CA or reports family): an admitted request gets ``x-ms-resource-unit`` (the RU it
cost) and, once it leaves one of its identity windows more than 0.8 full, ``x-ms-throttle-limit-percentage``
(that window's use, one decimal); one refused by an identity window gets ``x-ms-throttle-scope``
(``<Scope>/<Limit>/<ApplicationId>/<TenantId>``) and ``x-ms-throttle-information``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

RU_BY_SIZE_DEFAULT = {"S": 3500, "M": 5000, "L": 8000}


@dataclass
class ThrottleLimits:
    """Every limit is a parameter so tests can shrink them; the defaults are the documented ones."""

    ru_small: int = 3500  # tenants with < 50 users
    ru_medium: int = 5000  # tenants with <= 500 users
    ru_large: int = 8000
    ru_window_s: float = 10.0
    app_tenant_writes: int = 3000
    app_tenant_writes_window_s: float = 150.0
    tenant_writes: int = 18000  # all apps together
    tenant_writes_window_s: float = 300.0
    app_ru: int = 150000  # one app across all tenants
    app_ru_window_s: float = 20.0
    app_writes: int = 70000  # older documentation says 35,000: keep it a setting
    app_writes_window_s: float = 300.0
    ca_requests: int = 1  # per tenant, CA policies + named locations
    ca_window_s: float = 1.0
    report_requests: int = 5  # per app per tenant
    report_window_s: float = 10.0

    def ru_for(self, size_class: str) -> int:
        return {"S": self.ru_small, "M": self.ru_medium, "L": self.ru_large}[size_class]


class SlidingWindow:
    """At most ``limit`` units in any ``window`` seconds; records (time, cost) pairs."""

    __slots__ = ("limit", "window", "events", "total")

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        ev = self.events
        while ev and ev[0][0] <= cutoff:
            self.total -= ev.popleft()[1]

    def wait_for(self, cost: int, now: float) -> float:
        """0 if ``cost`` fits now, else seconds until enough of the window has expired."""
        self._expire(now)
        excess = self.total + cost - self.limit
        if excess <= 0:
            return 0.0
        if cost > self.limit:
            return self.window
        freed = 0
        for t, c in self.events:
            freed += c
            if freed >= excess:
                return max(t + self.window - now, 0.001)
        return self.window

    def add(self, cost: int, now: float) -> None:
        self.events.append((now, cost))
        self.total += cost


# Per identity-and-access window: the x-ms-throttle-scope's <Scope> and <Limit>, and the
# x-ms-throttle-information a refusal by it carries (the docs' own example reasons).
IDENTITY_SCOPES = {
    "ru": ("Tenant_Application", "ReadWrite", "ResourceUnitLimitExceeded"),
    "app_ru": ("Application", "ReadWrite", "ResourceUnitLimitExceeded"),
    "writes": ("Tenant_Application", "Write", "WriteLimitExceeded"),
    "tenant_writes": ("Tenant", "Write", "WriteLimitExceeded"),
    "app_writes": ("Application", "Write", "WriteLimitExceeded"),
}
LIMIT_PERCENTAGE_ABOVE = 0.8  # "Returned only when the application consumed more than 0.8 of its limit"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float | None = None  # None: the 429 carries no Retry-After
    limit: str = ""
    ru: int | None = None  # identity requests: the resource units this one cost
    limit_percentage: float | None = None  # the fullest identity window's use, when above 0.8
    scope: str = ""  # a refusal by an identity window: x-ms-throttle-scope
    information: str = ""

    def headers(self) -> dict[str, str]:
        """The documented identity-and-access headers this decision puts on its response."""
        out = {}
        if self.ru is not None:
            out["x-ms-resource-unit"] = str(self.ru)
        if self.limit_percentage is not None:
            out["x-ms-throttle-limit-percentage"] = f"{self.limit_percentage:.1f}"
        if self.scope:
            out["x-ms-throttle-scope"] = self.scope
            out["x-ms-throttle-information"] = self.information
        return out


ALLOWED = Decision(True)


def format_retry_after(seconds: float) -> str:
    """Graph sends integers or fractions such as ``2.128``; round up to the millisecond."""
    ms = math.ceil(seconds * 1000)
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0")


class Throttler:
    """All windows of one simulator. ``check`` either admits a request (and records it) or refuses it."""

    def __init__(self, limits: ThrottleLimits | None = None, enabled: bool = True):
        self.limits = limits or ThrottleLimits()
        self.enabled = enabled
        self._windows: dict[tuple, SlidingWindow] = {}
        # The windows one kind of request is checked against, built once per kind (a benchmark sends
        # millions of requests of a handful of kinds); cleared together with the windows.
        self._plans: dict[tuple, tuple[tuple[str, SlidingWindow, bool], ...]] = {}

    def _w(self, key: tuple, limit: int, window: float) -> SlidingWindow:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = SlidingWindow(limit, window)
        return w

    def reset(self) -> None:
        self._windows.clear()
        self._plans.clear()

    def _plan(
        self, app_id: str, tenant_id: str, size_class: str, is_write: bool, family: str | None
    ) -> tuple[tuple[str, SlidingWindow, bool], ...]:
        """(limit name, window, whether the request's RU cost applies) in the order they are checked."""
        lim = self.limits
        checks: list[tuple[str, SlidingWindow, bool]] = []
        if family == "ca":
            checks.append(("ca", self._w(("ca", tenant_id), lim.ca_requests, lim.ca_window_s), False))
        elif family == "reports":
            checks.append(
                (
                    "reports",
                    self._w(("rep", app_id, tenant_id), lim.report_requests, lim.report_window_s),
                    False,
                )
            )
        checks.append(
            ("ru", self._w(("ru", app_id, tenant_id), lim.ru_for(size_class), lim.ru_window_s), True)
        )
        checks.append(("app_ru", self._w(("app_ru", app_id), lim.app_ru, lim.app_ru_window_s), True))
        if is_write:
            checks.append(
                (
                    "writes",
                    self._w(("wr", app_id, tenant_id), lim.app_tenant_writes, lim.app_tenant_writes_window_s),
                    False,
                )
            )
            checks.append(
                (
                    "tenant_writes",
                    self._w(("twr", tenant_id), lim.tenant_writes, lim.tenant_writes_window_s),
                    False,
                )
            )
            checks.append(
                ("app_writes", self._w(("awr", app_id), lim.app_writes, lim.app_writes_window_s), False)
            )
        return tuple(checks)

    def check(
        self,
        *,
        app_id: str,
        tenant_id: str,
        size_class: str,
        ru: int,
        is_write: bool,
        family: str | None,
        now: float,
    ) -> Decision:
        if not self.enabled:
            return ALLOWED
        key = (app_id, tenant_id, size_class, is_write, family)
        checks = self._plans.get(key)
        if checks is None:
            checks = self._plans[key] = self._plan(app_id, tenant_id, size_class, is_write, family)
        worst, worst_name = 0.0, ""
        for name, window, costs_ru in checks:
            wait = window.wait_for(ru if costs_ru else 1, now)
            if wait > 0 and name == "ca":
                return Decision(False, None, "ca")  # documented: no Retry-After on this one
            if wait > worst:
                worst, worst_name = wait, name
        identity = family is None
        if worst > 0:
            if not identity or worst_name not in IDENTITY_SCOPES:
                return Decision(False, worst, worst_name)
            scope, kind, information = IDENTITY_SCOPES[worst_name]
            scope = f"{scope}/{kind}/{app_id}/{tenant_id}"
            return Decision(False, worst, worst_name, scope=scope, information=information)
        fullest = 0.0
        for name, window, costs_ru in checks:
            window.add(ru if costs_ru else 1, now)
            if name in IDENTITY_SCOPES:
                fullest = max(fullest, window.total / window.limit)
        if not identity:
            return ALLOWED
        if fullest > LIMIT_PERCENTAGE_ABOVE:
            return Decision(True, ru=ru, limit_percentage=fullest)
        return _ADMITTED.get(ru) or _ADMITTED.setdefault(ru, Decision(True, ru=ru))


_ADMITTED: dict[int, Decision] = {}  # one admitted-identity decision per RU cost (nothing else varies)
