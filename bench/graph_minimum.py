"""Graph's minimum time for a migration scenario: how fast Microsoft Graph's documented limits would let
any client take the same fleet through the same writes, the yardstick the throughput bench judges the
pipeline against (pure arithmetic, no I/O).

A tenant cannot go faster than its unavoidable reads before its first write (each user's per-user state:
one 1-RU GET per user at the tenant's resource-unit rate), its writes at 20/s, and the read-back of each
user after them (again one GET per user). A fleet shares the app's 233 writes/s: at best every write is
sent at the binding limit while other tenants read, and only the first tenant's reads before and the last
tenant's reads after cannot overlap anyone's writes. So

    minimum = max( the slowest single tenant alone,
                   all writes at the app cap + the shortest read before + the shortest read after )

Reads here are only what a migration cannot skip: the per-user state before and after, and the reports
a safe migration reads before its first write (the readiness gate: the registration report, one sign-in
query per legacy client, the directory audits; `TenantWork.report_requests`). Reports have a limit of
their own, 5 requests per 10 s per app and tenant, so they overlap the per-user reads and the read before
the first write is the longer of the two. The census's user list, policy reads and the tool's own checks
are not counted, so the minimum is a lower bound the pipeline can approach, not reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TENANT_WRITES_PER_S = 20.0  # 3,000 writes per 150 s per app and tenant
APP_WRITES_PER_S = 70_000 / 300  # 70,000 writes per 5 min per app, across tenants
RU_PER_10S = {"S": 3500, "M": 5000, "L": 8000}  # resource units per 10 s per app and tenant, by size
APP_RU_PER_S = 150_000 / 20  # resource units per 20 s per app, across tenants
REPORTS_PER_10S = 5  # identity and access reports, per app and tenant
# The readiness gate's report requests before the first write: the registration report (at least one page of
# the users not registered), one sign-in query per legacy client (7: Graph filters clientAppUsed by `eq`
# only) and the directory audits that tell Microsoft-managed policies.
GATE_REPORT_REQUESTS = 9


def size_class(users: int) -> str:
    """Graph's tenant size for resource-unit limits: S under 50 users, M up to 500, L above."""
    return "S" if users < 50 else "M" if users <= 500 else "L"


def read_rate(users: int) -> float:
    """Resource units (= per-user GETs) per second Graph allows one tenant of this size."""
    return RU_PER_10S[size_class(users)] / 10


@dataclass(frozen=True)
class TenantWork:
    users: int  # users read before and after (every user's per-user state)
    writes: int  # users whose per-user state is written
    report_requests: int = 0  # report requests before the first write


def report_floor_s(requests: int) -> float:
    """The least time `requests` report requests take at 5 per 10 s: five at once, then five per window."""
    return 10.0 * ((requests - 1) // REPORTS_PER_10S) if requests > 0 else 0.0


def read_before_s(work: TenantWork) -> float:
    """A tenant's reads before its first write: every user's state, the reports alongside."""
    return max(work.users / read_rate(work.users), report_floor_s(work.report_requests))


def tenant_minimum_s(work: TenantWork) -> float:
    """One tenant alone: read (users and reports), write at 20/s, read every user back."""
    reads = read_before_s(work) + work.users / read_rate(work.users)
    return reads + work.writes / TENANT_WRITES_PER_S


def fleet_minimum_s(tenants: Sequence[TenantWork]) -> float:
    """The fleet's minimum end-to-end time (module docstring); 0 for no tenants."""
    if not tenants:
        return 0.0
    slowest_alone = max(tenant_minimum_s(t) for t in tenants)
    shortest_before = min(read_before_s(t) for t in tenants)
    shortest_after = min(t.users / read_rate(t.users) for t in tenants)
    total_reads = sum(2 * t.users for t in tenants)
    writes = sum(t.writes for t in tenants)
    shared = max(writes / APP_WRITES_PER_S, total_reads / APP_RU_PER_S) + shortest_before + shortest_after
    return max(slowest_alone, shared)


# Rows per page of the registration report: Graph does not document the page size (nor $top for this
# report), the simulator answers 100 rows a page.
REGISTRATION_PAGE = 100


def census_minimum_s(tenants: int, users: int) -> float:
    """The least time a census of `tenants` tenants of `users` users each can take, all at once: every
    user's per-user state (one RU each, at the tenant's rate and, across tenants, the app's) and the
    whole registration report plus the directory audits (report requests, 5 per 10 s per tenant)."""
    if not tenants or not users:
        return 0.0
    report = report_floor_s(-(-users // REGISTRATION_PAGE) + 1)
    one = max(users / read_rate(users), report)
    return max(one, tenants * users / APP_RU_PER_S)


def census_pct_of_read_limit(users: int, census_s: float) -> float | None:
    """A census's per-user reads per second as a share of the tenant's resource-unit rate (%)."""
    if not census_s:
        return None
    return 100 * (users / census_s) / read_rate(users)
