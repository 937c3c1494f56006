"""Reliability trials: a Redis of their own, resuming through the sweeper, and the figures each trial reports.

Every trial appends one JSON line to the file named by `MSP_RELIABILITY_REPORT` (when set), pass or
fail, which `scripts/reliability.py` sums into its table.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from migrations_engine.audit.models import canonical_json
from migrations_engine.choices import AuditKind, AuditOutcome
from migrations_engine.graph.resources.mfa_policy import POLICY_NAME
from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from migrations_engine.runs.sweeper import sweep
from scripts.processes import Processes, free_port, start_redis
from tenants.models import CustomerTenant
from tests.migrations_engine.pipeline_helpers import (
    audit_matches_simulator,
    effective_writes,
    item_of,
    sim_state,
    worker_process,
)

SHAPES = ["contoso", "fabrikam", "northwind", "woodgrove"]


class RedisServer:
    """A redis-server of a test's own (no persistence) that it may flush, stop and start again."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.procs = Processes(base / "logs")
        self.url = ""

    def start(self) -> str:
        self.url = start_redis(self.procs, self.base / "data", port=self.port)
        return self.url

    def stop(self) -> None:
        self.procs.stop_all()

    def restart(self) -> None:
        self.stop()
        self.start()

    def flush(self) -> None:
        redis.Redis.from_url(self.url).flushdb()

    def keys(self) -> int:
        return redis.Redis.from_url(self.url).dbsize()


@pytest.fixture
def own_redis(settings, tmp_path):
    """A second Redis besides the session's: the queue settings point at it for this test."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings.RQ_QUEUES = {"default": {"URL": server.url, "DEFAULT_TIMEOUT": 600}}
    try:
        yield server
    finally:
        server.stop()


def resume_until_done(run: MigrationRun, redis_url: str, *, crash_points: list[str], rounds: int = 6) -> int:
    """Sweep and run a worker (crashing at the next of `crash_points`) until the item is finished.

    Returns how many workers died. Only the sweeper re-queues: `resume_stalled` is never called.
    """
    died = 0
    points = list(crash_points)
    for _ in range(rounds):
        item = item_of(run)
        if item.status not in ("queued", "running"):
            return died
        sweep()
        died += worker_process(redis_url, crash_points=points.pop(0) if points else "") == 137
    item = item_of(run)
    assert item.status not in ("queued", "running"), f"still {item.status} after {rounds} rounds"
    return died


@dataclass
class TrialFigures:
    """What one trial measured on the simulator and in the audit log."""

    scenario: str
    tenant: str
    seed: int | None = None
    points: list[str] = field(default_factory=list)
    item_status: str = ""
    attempts: int = 0
    workers_died: int = 0
    gap_seconds: float = 0.0
    duplicate_writes: int = 0
    lost_writes: int = 0
    unresolved_unknowns: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    passed: bool = False

    def record(self) -> None:
        path = os.environ.get("MSP_RELIABILITY_REPORT")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps(self.__dict__) + "\n")


def measure(
    figures: TrialFigures, sim, tenant: CustomerTenant, before: dict, t0: float, item: RunItem
) -> None:
    """Fill `figures` and its `problems` from the end state (the checks of `assert_migrated_once`,
    generalised to every demo shape, plus unreconciled unknown outcomes)."""
    item.refresh_from_db()
    figures.item_status, figures.attempts = item.status, item.attempt
    problems = figures.problems
    if item.status != "succeeded":
        problems.append(f"item {item.status}: {item.failure_reason} {item.traceback[-800:]}")
    state = sim_state(sim, tenant)
    tid = tenant.tenant_id

    coverage = sim.admin("GET", f"/_sim/tenants/{tid}/coverage?since={t0}")
    figures.gap_seconds = round(
        sum((g["end"] if g["end"] is not None else coverage["clock"]) - g["start"] for g in coverage["gaps"]),
        3,
    )
    if coverage["gaps"]:
        problems.append(f"{len(coverage['gaps'])} coverage gaps, {figures.gap_seconds} s")

    # Lost writes: what the end state lacks.
    lost = [
        u["userPrincipalName"]
        for u in state["users"]
        if not u["breakGlass"] and u["perUserMfaState"] != "disabled"
    ]
    enabled = [
        p for p in state["policies"] if p["state"] == "enabled" and "mfa" in str(p.get("grantControls"))
    ]
    figures.lost_writes = len(lost) + int(bool(state["security_defaults"])) + int(len(enabled) != 1)
    if figures.lost_writes:
        problems.append(
            f"lost: users {lost[:5]}, sd={state['security_defaults']}, enabled policies {len(enabled)}"
        )
    if [p["displayName"] for p in state["policies"]].count(POLICY_NAME) > 1:
        problems.append("more than one tool policy")
    bg_before = {u["id"]: u["perUserMfaState"] for u in before["users"] if u["breakGlass"]}
    if {u["id"]: u["perUserMfaState"] for u in state["users"] if u["breakGlass"]} != bg_before:
        problems.append("a break-glass account's per-user state changed")

    # Duplicate writes: one write (method, path, action, body) applied more than once.
    intents = {
        e.client_request_id: e for e in AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.INTENT)
    }
    writes = effective_writes(sim, tenant)
    keys = Counter()
    for w in writes:
        intent = intents.get(w["client_request_id"])
        body = canonical_json(intent.request_body) if intent else "?"
        keys[(w["method"], w["path"].split("?")[0], intent.action if intent else "?", body)] += 1
    figures.duplicate_writes = sum(n - 1 for n in keys.values() if n > 1)
    # and the counts `assert_migrated_once` expects of every shape
    by_path = Counter((w["method"], w["path"].split("?")[0]) for w in writes)
    extra = max(0, by_path[("POST", "/v1.0/identity/conditionalAccess/policies")] - 1)
    extra += max(
        0,
        by_path[("PATCH", "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy")]
        - (1 if before["security_defaults"] else 0),
    )
    for user in before["users"]:
        if user["breakGlass"]:
            continue
        bridged = before["security_defaults"] and user["perUserMfaState"] == "disabled"
        expected = 2 if bridged else (0 if user["perUserMfaState"] == "disabled" else 1)
        extra += max(
            0, by_path[("PATCH", f"/beta/users/{user['id']}/authentication/requirements")] - expected
        )
    figures.duplicate_writes = max(figures.duplicate_writes, extra)
    if figures.duplicate_writes:
        problems.append(
            f"{figures.duplicate_writes} duplicate writes: {[k for k, n in keys.items() if n > 1][:5]}"
        )

    # Unknown outcomes that no reconciliation settled.
    unknown = set(
        AuditEvent.objects.filter(
            tenant=tenant, kind=AuditKind.GRAPH_WRITE, outcome=AuditOutcome.UNKNOWN
        ).values_list("intent_id", flat=True)
    )
    settled = set(
        AuditEvent.objects.filter(tenant=tenant, kind=AuditKind.RECONCILIATION).values_list(
            "intent_id", flat=True
        )
    )
    unresolved = unknown - settled
    figures.unresolved_unknowns = len(unresolved)
    if unresolved:
        actions = list(AuditEvent.objects.filter(pk__in=unresolved).values_list("action", flat=True))
        problems.append(f"{len(unresolved)} unknown outcomes never reconciled: {actions}")

    try:
        audit_matches_simulator(sim, tenant)
    except AssertionError as exc:
        problems.append(f"audit does not match the simulator: {exc}")


class Trial:
    """Times a trial and records its figures whatever happens (a crash of the test itself included)."""

    def __init__(self, figures: TrialFigures) -> None:
        self.figures = figures
        self.started = time.monotonic()

    def __enter__(self) -> TrialFigures:
        return self.figures

    def __exit__(self, exc_type, exc, tb) -> bool:
        f = self.figures
        f.seconds = round(time.monotonic() - self.started, 2)
        if exc is not None:
            f.problems.append(f"{type(exc).__name__}: {str(exc)[:500]}")
        f.passed = not f.problems
        f.record()
        if exc is None:
            assert not f.problems, (
                f"{f.scenario} seed={f.seed} tenant={f.tenant} points={f.points}: {f.problems}"
            )
        return False
