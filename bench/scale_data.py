"""An MSP's real-scale data set in an already-migrated PostgreSQL database, made fast, for measurements.

    DATABASE_URL=postgres://… .venv/bin/python -m bench.scale_data [--tenants 1000] [--audit-rows 10000000]

What `build()` makes (the figures are for 1,000 tenants; everything scales with `tenants`):
- tenants in every migration state, with consent, break-glass accounts and tags; sizes skewed, about
  920,000 users in all: most tenants 100-2,000 users, a few 5,000-15,000, one of exactly 20,000;
- each tenant's current census (`CensusUser` rows, generation 1), which the tenant's figures agree with;
- the day after a fleet-wide full run: one big run with an item and a complete snapshot for every tenant
  (mostly succeeded, some failed, a few still running or queued) and ~400,000 per-user outcomes; ~18
  smaller runs before it (plans, pilots, full runs) and the rollbacks of some of its tenants after it;
- `audit_rows` audit rows in one hash chain per tenant plus "fleet", over the last 12 months, that verify,
  with their chain heads (bench/scale_audit.py makes them);
- two staff users: bench-staff (Operator, granted 50 tenants including the largest) and bench-team
  (Viewer, sees tenants through its team's group grants). The caller makes any superuser.

Why: the console's pages, exports and checks must be measured at the size a large MSP runs them, and
the ORM would take hours to write this. Everything goes in through PostgreSQL COPY, in one transaction;
rows this module points at (tenants, runs, items, snapshots, audit rows) get ids it reserves from their
sequences. Each tenant's stored state is what `tenants.migration_state.decide` makes of the runs made
for it, except "not_started", which the console only gives a tenant without a census (every tenant here
has one). The same seed and start time make the same data, whatever the number of workers.
"""
# ruff: noqa: E402 - the project's imports follow django.setup() when this runs as a script

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import django

if __name__ == "__main__":  # `python -m bench.scale_data`: Django must be set up before the models load
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msp_console.settings")
    django.setup()

from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection, transaction

from bench import scale_audit as audit
from bench.scale_audit import HOUR, MINUTE, SECOND, STAFF, Item, Population, Writes
from migrations_engine.graph.permissions import REQUIRED_ROLES
from migrations_engine.models import (
    AuditChainHead,
    AuditEvent,
    DriftFinding,
    MigrationRun,
    RunItem,
    TenantSnapshot,
    UserOutcome,
    UserSnapshot,
)
from migrations_engine.runs.pipeline import steps_for
from staff.roles import ROLES
from tenants.migration_state import Readiness, RealRun, decide
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant, Tag, TenantConsent, TenantGrant
from tenants.synthetic import KINDS, NAMES, STATES

PASSWORD = "a-bench-password-1234"
LARGEST, USERS_PER_TENANT, GRANTED = 20_000, 920, 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Shares of the states of tenants.synthetic.STATES (and rolling_back), moved towards "migrated": this is
# the fleet the day after a full run over every tenant, whose items mostly succeeded.
WEIGHTS = {
    "migrated": 42, "migrated_drift": 5, "needs_attention": 5, "migrating": 2, "rolled_back": 2,
    "partly_rolled_back": 1, "rolling_back": 1, "pilot_verified": 4, "ready": 12, "blocked": 12,
    "not_started": 14,
}  # fmt: skip
assert set(WEIGHTS) == {name for name, _ in STATES} | {"rolling_back"}
# Tenants whose item in the big run changed them; the steps a failed item can stop at having written.
WROTE_BIG = set(
    "migrated migrated_drift needs_attention migrating rolled_back partly_rolled_back rolling_back".split()
)
WRITE_STEPS = ("disable_per_user", "restore_per_user")
BLOCKS = {
    "free": ("check_licence", "Entra ID Free: Conditional Access needs Entra ID P1 or P2"),
    "consent": ("verify_consent", "Consent is missing permissions: Policy.ReadWrite.AuthenticationMethod"),
    "break_glass": ("guard_break_glass", "No break-glass accounts configured"),
}
OTHER_POLICIES = (
    "Block legacy authentication",
    "Require compliant device for admins",
    "Block risky countries",
)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def _iso(us: int) -> str:
    return _dt(us).isoformat()


@dataclass
class RunPlan:
    """A run to write; times are µs since the epoch, like every time in the plan."""

    mode: str
    created: int
    actor: str
    approver: str = ""
    rollback_of: RunPlan | None = None
    big: bool = False
    pilot_group: str = ""
    items: list[ItemPlan] = field(default_factory=list)
    pk: int = 0
    status: str = ""
    finished: int | None = None


@dataclass
class ItemPlan:
    """One tenant's item in one run, and the per-user writes it made."""

    run: RunPlan
    tenant: TenantPlan
    status: str  # the ItemStatus it ends in
    frac: float = 1.0  # share of its users written (running and errored items stop part-way)
    fail_permille: int = 0
    reason: str = ""
    stop_step: str = ""  # the step it failed at, or is running
    pk: int = 0
    started: int | None = None
    finished: int | None = None
    writes: Writes | None = None
    audit: Item | None = None
    rows: int = 0  # its Graph writes' audit rows
    gap: int = 0  # µs between them


@dataclass
class TenantPlan:
    """A tenant, its users (`pop`), its items oldest first, and what its census and snapshot saw."""

    index: int
    name: str
    domain: str
    users: int
    state: str
    pop: Population
    tenant_id: uuid.UUID
    onboarded: int
    licence: str
    sd: bool  # security defaults on before any migration
    block: str = ""
    retry: float = 0.0
    items: list[ItemPlan] = field(default_factory=list)
    pk: int = 0
    policy_id: str = ""
    snapshot: list[str] = field(default_factory=list)  # per-user states the big run's snapshot saw
    census: list[str] = field(default_factory=list)  # per-user states of the current census
    snapshot_pk: int = 0
    snapshot_sd: bool = False
    census_sd: bool = False
    census_policy: str = "none"
    census_at: int = 0
    census_source: dict = field(default_factory=dict)
    decision: tuple[str, str, int | None, int] = ("", "", None, 0)  # state, reason, run pk, at

    @property
    def consent(self) -> str:
        return "partial" if self.block == "consent" else "granted"

    @property
    def missing(self) -> list[str]:
        return ["Policy.ReadWrite.AuthenticationMethod"] if self.block == "consent" else []

    @property
    def census_status(self) -> str:
        return {"free": "free", "consent": "partial"}.get(self.block, "ok")


def _sizes(rng: random.Random, count: int) -> list[int]:
    """Users per tenant: one of exactly LARGEST, 3 % of 5,000-15,000, the rest 100-2,000 (log-uniform,
    scaled so the fleet has about USERS_PER_TENANT users a tenant)."""
    big = [round(math.exp(rng.uniform(math.log(5000), math.log(15000)))) for _ in range(int(count * 0.03))]
    rest = [math.exp(rng.uniform(math.log(100), math.log(2000))) for _ in range(count - 1 - len(big))]
    want = USERS_PER_TENANT * count - LARGEST - sum(big)
    scale = min(1.6, max(0.1, want / sum(rest))) if rest else 1.0
    sizes = [LARGEST, *big, *(max(20, round(r * scale)) for r in rest)]
    rng.shuffle(sizes)
    return sizes


def plan_tenants(rng: random.Random, count: int, t0: int) -> list[TenantPlan]:
    sizes = _sizes(rng, count)
    largest = sizes.index(LARGEST)
    names, weights = zip(*WEIGHTS.items(), strict=True)
    states = rng.choices(names, weights, k=count)
    others = [i for i in range(count) if i != largest]
    if len(others) >= len(names):  # every state at least once
        for i, name in zip(rng.sample(others, len(names)), names, strict=True):
            states[i] = name
    states[largest] = "needs_attention"  # the largest tenant: writes, per-user failures, a failed item
    tenants = []
    for i, (users, state) in enumerate(zip(sizes, states, strict=True)):
        name = f"{rng.choice(NAMES)} {rng.choice(KINDS)} {i + 1}"
        domain = f"{name.lower().replace(' ', '')}.onmicrosoft.com"
        enabled = 55 if users == LARGEST else rng.randint(30, 65)
        enforced = 30 if users == LARGEST else rng.randint(10, 35)
        block = rng.choice(tuple(BLOCKS)) if state == "blocked" else ""
        retry = 0.1 + 0.9 * min(1.0, users / LARGEST) ** 0.7  # 429s per user: big tenants hit Graph's limits
        tenants.append(
            TenantPlan(
                index=i,
                name=name,
                domain=domain,
                users=users,
                state=state,
                pop=Population(users, domain, rng.getrandbits(62), enabled, enforced, rng.randint(70, 95)),
                tenant_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                onboarded=t0 + rng.randrange(120 * 24) * HOUR + rng.randrange(HOUR),
                licence="free" if block == "free" else rng.choice(("p1", "p1", "p2")),
                sd=rng.random() < 0.25,
                block=block,
                retry=retry,
                policy_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
        )
    return tenants


def plan_runs(rng: random.Random, tenants: list[TenantPlan], t0: int, now: int) -> list[RunPlan]:
    """The runs, oldest first, with every tenant's items (their statuses follow the tenant's state)."""
    n_old = max(4, min(18, round(len(tenants) / 55)))
    modes = ("plan", "pilot", "plan", "full", "pilot", "plan")
    times = sorted(rng.randrange(t0 + 150 * 24 * HOUR, now - 12 * 24 * HOUR) for _ in range(n_old))
    old = [RunPlan(modes[i % len(modes)], at, rng.choice(STAFF)) for i, at in enumerate(times)]
    for run in old:
        run.pilot_group = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if run.mode == "pilot" else ""
    big = RunPlan("full", now - 6 * 24 * HOUR, rng.choice(STAFF), approver=rng.choice(STAFF), big=True)
    back = RunPlan("rollback", now - 3 * 24 * HOUR, rng.choice(STAFF), rollback_of=big)
    live_back = RunPlan("rollback", now - 40 * MINUTE, rng.choice(STAFF), rollback_of=big)
    plans, pilots, fulls = ([r for r in old if r.mode == m] for m in ("plan", "pilot", "full"))
    for t in tenants:
        items = []
        if rng.random() < 0.35:
            items.append(ItemPlan(rng.choice(plans), t, "succeeded"))
        if t.state == "pilot_verified" or (t.state in WROTE_BIG and rng.random() < 0.3):
            items.append(ItemPlan(rng.choice(pilots), t, "succeeded"))
        if t.state in WROTE_BIG and fulls and rng.random() < 0.08:
            why = "Disable per-user MFA: some users could not be changed (see the per-user failures)"
            items.append(ItemPlan(rng.choice(fulls), t, "failed", 1.0, 40, why, "disable_per_user"))
        items.sort(key=lambda i: i.run.created)
        items.append(_big_item(rng, big, t))
        if t.state in ("rolled_back", "partly_rolled_back"):
            partly = t.state == "partly_rolled_back"
            why, step = ("Restore per-user MFA: some users could not be restored", "restore_per_user")
            status = "failed" if partly else "succeeded"
            items.append(
                ItemPlan(back, t, status, 1.0, 60, why, step) if partly else ItemPlan(back, t, status)
            )
        elif t.state == "rolling_back":
            items.append(
                ItemPlan(live_back, t, "running", rng.uniform(0.2, 0.8), stop_step="restore_per_user")
            )
        for item in items:
            item.run.items.append(item)
        t.items = items
    return [r for r in (*old, big, back, live_back) if r.items]


def _big_item(rng: random.Random, big: RunPlan, t: TenantPlan) -> ItemPlan:
    state = t.state
    if state in ("migrated", "migrated_drift", "rolled_back", "partly_rolled_back", "rolling_back"):
        return ItemPlan(big, t, "succeeded")
    if state == "needs_attention":
        if t.users != LARGEST and rng.random() < 0.2:
            why = "KeyError: 'perUserMfaState'"
            return ItemPlan(big, t, "errored", rng.uniform(0.3, 0.9), 10, why, "disable_per_user")
        why = "Disable per-user MFA: some users could not be changed (see the per-user failures)"
        return ItemPlan(big, t, "failed", 1.0, 30, why, "disable_per_user")
    if state == "migrating":
        return ItemPlan(big, t, "running", rng.uniform(0.1, 0.9), 5, "", "disable_per_user")
    if state == "pilot_verified":
        return ItemPlan(
            big, t, "cancelled", reason="Cancelled by staff between steps", stop_step="check_licence"
        )
    if state == "blocked":
        step, why = BLOCKS[t.block]
        return ItemPlan(big, t, "failed", reason=why, stop_step=step)
    if state == "ready" and rng.random() < 0.15:
        return ItemPlan(big, t, "queued")
    if state == "ready":
        why = "Readiness gate: 14% of in-scope users are not MFA-registered (threshold 10%)"
        return ItemPlan(big, t, "failed", reason=why, stop_step="readiness")
    return ItemPlan(big, t, "cancelled", reason="Cancelled by staff before it started")  # not_started


def _writes(t: TenantPlan, item: ItemPlan, state: list[str], scale: float) -> Writes | None:
    """The per-user writes an item made, given the users' states when it ran (None: it wrote nothing)."""
    if item.status not in ("succeeded", "running") and item.stop_step not in WRITE_STEPS:
        return None
    mode = item.run.mode
    if mode == "rollback":  # back to what the big run's snapshot saw
        users = [k for k in range(2, t.users) if state[k] != t.snapshot[k]]
        wanted = [t.snapshot[k] for k in users]
    else:
        users = [k for k in range(2, t.users) if state[k] != "disabled"]
        if mode == "pilot":
            users = users[: max(3, len(users) // 20)]
        wanted = ["disabled"] * len(users)
    keep = math.ceil(len(users) * item.frac * scale)
    purpose = {"plan": "plan", "rollback": "restore"}.get(mode, "migrate")
    salt = (t.pop.salt ^ item.run.created) & 0xFFFFFFFF
    retry = 0.0 if mode == "plan" else t.retry
    return Writes(t.pop, users[:keep], [state[k] for k in users[:keep]], wanted[:keep], purpose, salt, retry,
                  item.fail_permille)  # fmt: skip


def plan_writes(tenants: list[TenantPlan], scale: float) -> None:
    """Every item's writes, following each user's state through the tenant's runs (oldest first): the big
    run's snapshot and the current census are states along the way. `scale` < 1 writes fewer users."""
    for t in tenants:
        state = [t.pop.before(k) for k in range(t.users)]
        sd, policy = t.sd, "none"
        for item in t.items:
            if item.run.big:
                t.snapshot, t.snapshot_sd = state, sd
            if item.status == "running":  # the census was taken before it started (it is the last item)
                t.census, t.census_sd, t.census_policy = state, sd, policy
            item.writes = _writes(t, item, state, scale)
            item.audit, item.rows = None, 0
            if item.writes is None:
                continue
            mode = item.run.mode
            step = "restore_per_user" if mode == "rollback" else "disable_per_user"
            restored = mode == "rollback" and item.status == "succeeded"
            sd_rows = sd if mode in ("plan", "full") else t.sd and restored  # it (would) switch them
            item.audit = Item(
                item.run.pk, item.pk, item.run.actor, mode, item.writes, sd_rows, t.policy_id, step
            )
            item.rows = item.audit.rows()
            if mode == "plan":
                continue
            state = list(state)
            for k, wanted in zip(item.writes.users, item.writes.wanted, strict=True):
                if item.writes.fate(k)[1] != "failed":
                    state[k] = wanted
            if mode == "full":
                sd, policy = False, "enabled"
            elif mode == "pilot" and policy == "none":
                policy = "enabledForReportingButNotEnforced"
            elif mode == "rollback" and item.status == "succeeded":
                sd, policy = t.sd, "disabled"
        if not t.items or t.items[-1].status != "running":
            t.census, t.census_sd, t.census_policy = state, sd, policy


def plan_times(rng: random.Random, runs: list[RunPlan], now: int) -> None:
    """When each item started and finished (its writes fit in between), and each run's status."""
    for run in runs:
        for item in run.items:
            item.gap = rng.randrange(5_000, 15_000) if run.mode == "plan" else rng.randrange(20_000, 80_000)
            length = max(item.rows - 1, 0) * item.gap
            lo = run.created + 2 * MINUTE
            if item.status == "queued":
                continue
            if item.status == "cancelled" and not item.stop_step:  # before it started
                item.finished = run.created + 3 * HOUR + rng.randrange(HOUR)
                continue
            if item.status == "running":
                room = now - MINUTE - lo
                if length > room:  # its writes so far fit in the time since its run started
                    item.gap = room // max(item.rows - 1, 1)
                    length = item.gap * max(item.rows - 1, 0)
                item.started = max(lo, now - MINUTE - length - rng.randrange(20 * MINUTE))
                continue
            last = item.tenant.items[-1]
            hi = last.run.created - HOUR if run.big and last.run.mode == "rollback" else now - 30 * MINUTE
            hi = hi if run.big or run.mode == "rollback" else min(hi, run.created + 12 * HOUR)
            item.started = lo + rng.randrange(max(1, hi - length - lo))
            item.finished = item.started + length + rng.randrange(5, 90) * SECOND
        statuses = [i.status for i in run.items]
        if any(s in ("queued", "running") for s in statuses):
            run.status = "running" if "running" in statuses else "pending"
        else:
            run.status = "succeeded" if all(s == "succeeded" for s in statuses) else "failed"
            run.finished = max(i.finished or run.created for i in run.items) + 2 * SECOND


def _wrote(item: ItemPlan) -> bool:
    """Whether a Graph write of the item may have reached the tenant (a succeeded or unknown outcome)."""
    if item.audit is None or item.run.mode == "plan":
        return False
    if item.run.mode in ("full", "pilot") or item.audit.security_defaults:
        return True  # its policy.create succeeded
    return any(item.writes.fate(k)[1] != "failed" for k in item.writes.users)


def _census_message(t: TenantPlan) -> str:
    if t.block == "free":
        return "Conditional Access needs Entra ID P1 or P2: buy P1/P2 before migrating"
    return "Missing permissions: " + ", ".join(t.missing) if t.missing else "Census complete"


def plan_states(rng: random.Random, tenants: list[TenantPlan], now: int) -> int:
    """Each tenant's census time and what `decide` makes of its facts; returns how many tenants ended in
    another state than the one aimed at (a rollback with nothing to restore, say)."""
    moved = 0
    for t in tenants:
        done = [i for i in t.items if i.audit is not None and i.run.mode != "plan" and i.status != "running"]
        if done and done[-1].status == "succeeded":  # the verify step's census
            kind = "verify_rollback" if done[-1].run.mode == "rollback" else "verify"
            t.census_at = done[-1].finished - SECOND
            t.census_source = {"kind": kind, "run_id": done[-1].run.pk, "at": _iso(t.census_at)}
        else:
            t.census_at = now - rng.randrange(2 * HOUR, 4 * 24 * HOUR)
            if done:
                t.census_at = min(now - 5 * MINUTE, done[-1].finished + rng.randrange(10 * MINUTE, 12 * HOUR))
            if t.items and t.items[-1].status == "running":
                t.census_at = min(t.census_at, t.items[-1].started - 10 * MINUTE)
            t.census_source = {"kind": "census", "at": _iso(t.census_at)}
        started = sorted((i for i in t.items if i.run.mode != "plan" and i.started), key=lambda i: i.started)
        history = [RealRun(i.run.pk, i.run.mode, i.status, _wrote(i), i.reason) for i in started]
        facts = Readiness(
            t.census_status, _census_message(t), t.licence, t.consent, t.missing, t.block != "break_glass"
        )
        decision = decide(history, facts, t.state == "migrated_drift")
        at = max([i.finished or i.started for i in started] or [t.census_at])
        if t.state == "not_started":
            t.decision = ("not_started", "No run has started for this tenant yet", None, t.census_at)
            continue
        moved += decision.state != t.state
        t.decision = (decision.state, decision.reason, decision.run_id, at)
    return moved


# --- writing the tables ------------------------------------------------------------------------------


def _reserve(cursor, model, count: int) -> int:
    """The first of `count` consecutive ids taken from the table's sequence (for rows numbered here)."""
    table = model._meta.db_table
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    seq = cursor.fetchone()[0]
    cursor.execute(
        f"SELECT setval(%s, GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}),"
        f" (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {seq})) + %s)",
        [seq, max(count, 1)],
    )
    return cursor.fetchone()[0] - max(count, 1) + 1


def _copy(cursor, model, columns: tuple[str, ...], rows, progress, label: str) -> int:
    """COPY rows (tuples in `columns` order) into the model's table; every column but id must be named."""
    fields = {f.column for f in model._meta.concrete_fields}
    assert set(columns) <= fields and not fields - set(columns) - {"id"}, (label, fields ^ set(columns))
    started, count = time.perf_counter(), 0
    with cursor.copy(f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    seconds = time.perf_counter() - started
    progress(f"{label}: {count:,} rows in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f} rows/s)")
    return count


def _policies(t: TenantPlan) -> list[dict]:
    """The Conditional Access policies the census listed (as `census_summary` keeps them)."""
    names = [] if t.licence == "free" else list(OTHER_POLICIES[: t.index % 4])
    found = [
        {"id": str(uuid.UUID(int=(t.pop.salt * (n + 3)) % (1 << 128), version=4)), "displayName": name,
         "state": "enabled", "templateId": None, "requiresMfaForAll": False, "microsoftManaged": False}
        for n, name in enumerate(names)
    ]  # fmt: skip
    if t.census_policy != "none":
        ours = {"id": t.policy_id, "displayName": audit.POLICY_NAME, "state": t.census_policy}
        found.insert(0, {**ours, "templateId": None, "requiresMfaForAll": True, "microsoftManaged": False})
    return found


def tenant_rows(tenants: list[TenantPlan]):
    for t in tenants:
        per_user = {"disabled": 0, "enabled": 0, "enforced": 0}
        for state in t.census:
            per_user[state] += 1
        reg = [t.pop.registered(k) for k in range(t.users)]
        plans = [i for i in t.items if i.run.mode == "plan" and i.status == "succeeded"]
        state, reason, run_pk, state_at = t.decision
        policies = _policies(t)
        detail = {"policies": policies, "per_user": per_user, "notes": [] if t.census_status == "ok" else
                  [_census_message(t)], "missing_roles": t.missing, "source": t.census_source}  # fmt: skip
        licence_plans = {"p1": ["AAD_PREMIUM"], "p2": ["AAD_PREMIUM", "AAD_PREMIUM_P2"]}.get(t.licence, [])
        yield (
            t.pk, t.tenant_id, t.domain, t.name, "", _dt(t.onboarded), _dt(t.census_at), t.census_status,
            _dt(t.census_at), _census_message(t), t.licence, json.dumps(licence_plans), t.census_sd,
            len(policies), t.census_policy, t.users, per_user["enabled"], per_user["enforced"],
            per_user["disabled"], sum(1 for r in reg if r), sum(1 for r in reg if r is not None),
            json.dumps(detail), 1, t.state == "migrated_drift", state, reason, run_pk, _dt(state_at),
            plans[-1].run.pk if plans else None, _dt(plans[-1].finished) if plans else None,
            3 + bool(plans[-1].audit.security_defaults) if plans else None,
        )  # fmt: skip


TENANT_COLUMNS = (
    "id", "tenant_id", "primary_domain", "display_name", "notes", "created_at", "updated_at", "census_status",
    "census_at", "census_message", "licence", "licence_plans", "security_defaults", "ca_policy_count",
    "mfa_policy_state", "users_total", "per_user_enabled", "per_user_enforced", "per_user_disabled",
    "mfa_registered", "registration_known", "census_detail", "census_generation", "drift_detected",
    "migration_state", "migration_state_reason", "migration_state_run_id", "migration_state_at",
    "last_plan_run_id", "last_plan_at", "last_plan_changes",
)  # fmt: skip


def write_tenants(cursor, rng: random.Random, tenants: list[TenantPlan], progress) -> dict[str, int]:
    counts = {
        "tenants": _copy(cursor, CustomerTenant, TENANT_COLUMNS, tenant_rows(tenants), progress, "tenants")
    }
    roles = list(REQUIRED_ROLES)
    consent = (
        (t.pk, t.consent, _dt(t.onboarded + HOUR), None, json.dumps([r for r in roles if r not in t.missing]),
         json.dumps(t.missing), _dt(t.census_at), "")
        for t in tenants
    )  # fmt: skip
    columns = tuple(
        "tenant_id status granted_at granted_by_id roles missing_roles last_verified_at last_error".split()
    )
    counts["consents"] = _copy(cursor, TenantConsent, columns, consent, progress, "consents")
    glass = (
        (t.pk, json.dumps([t.pop.upn(0), t.pop.upn(1)]), None, 2, _dt(t.onboarded + 2 * HOUR))
        for t in tenants
        if t.block != "break_glass"
    )
    columns = ("tenant_id", "accounts", "group_id", "minimum_count", "updated_at")
    counts["break-glass configs"] = _copy(cursor, BreakGlassConfig, columns, glass, progress, "break-glass")
    tags = Tag.objects.bulk_create([Tag(name=n) for n in ("ring-0", "ring-1", "ring-2", "ring-3", "eu", "us",
                                                          "apac", "smb", "enterprise")])  # fmt: skip
    through = CustomerTenant.tags.through
    links = []
    for t in tenants:
        for tag in (tags[t.index % 4], tags[4 + rng.randrange(3)], tags[8 if t.users >= 5000 else 7]):
            links.append(through(customertenant_id=t.pk, tag_id=tag.pk))
    through.objects.bulk_create(links, batch_size=2000)
    counts["tag links"] = len(links)
    return counts


def census_rows(tenants: list[TenantPlan]):
    for t in tenants:
        pop = t.pop
        for k, state in enumerate(t.census):
            yield (t.pk, 1, pop.user_id(k), pop.upn(k), pop.display_name(k), pop.user_type(k), pop.enabled(k),
                   state, pop.registered(k), json.dumps(pop.methods(k)))  # fmt: skip


RUN_COLUMNS = tuple(
    "id mode status pilot_group_id options rollback_of_id started_by_id actor cancel_requested wave_id ring"
    " approved_by_id approved_at created_at finished_at preflight".split()
)
ITEM_COLUMNS = tuple(
    "id run_id tenant_id status next_step_index current_step attempt rq_job_id step_log counters state"
    " plan_diff verdict failure_reason retryable traceback claimed_by heartbeat_at started_at finished_at"
    " changed_at".split()
)
TRACEBACK = (
    'Traceback (most recent call last):\n  File "migrations_engine/runs/runner.py", line 171, in _run_steps\n'
    "    message = step.run(ctx)\nKeyError: 'perUserMfaState'\n"
)


def _step_log(item: ItemPlan, now: int) -> tuple[list[dict], int, str]:
    """The item's step log, checkpoint and current step: steps done up to where it stopped."""
    if item.started is None:
        return [], 0, ""
    steps = steps_for(item.run.mode)
    keys = [s.key for s in steps]
    upto = keys.index(item.stop_step) if item.stop_step in keys else 0
    upto = len(steps) if item.status == "succeeded" else upto
    end = item.finished or now
    at = [item.started + (end - item.started) * n // (len(steps) + 1) for n in range(len(steps) + 2)]
    log = [{"key": s.key, "title": s.title, "status": "done", "started_at": _iso(at[n]), "attempt": 1,
            "finished_at": _iso(at[n + 1]), "message": ""} for n, s in enumerate(steps[:upto])]  # fmt: skip
    if item.status in ("failed", "errored", "running") and upto < len(steps):
        entry = {"key": keys[upto], "title": steps[upto].title, "status": item.status, "attempt": 1,
                 "started_at": _iso(at[upto])}  # fmt: skip
        if item.status != "running":
            entry.update(finished_at=_iso(end), message=item.reason)
        log.append(entry)
    return log, upto, keys[upto] if item.status == "running" else ""


def item_rows(runs: list[RunPlan], now: int):
    for run in runs:
        for item in run.items:
            t, w = item.tenant, item.writes
            log, checkpoint, current = _step_log(item, now)
            before = {"disabled": 0, "enabled": 0, "enforced": 0}
            for state in t.snapshot:
                before[state] += 1
            counters = {"users_total": t.users, **{f"per_user_{s}": n for s, n in before.items()}}
            state = {"break_glass_ids": [t.pop.user_id(0), t.pop.user_id(1)]} if item.started else {}
            diff, verdict = [], ""
            if w is not None and run.mode == "plan":
                counters = {"migrate_done": len(w.users)}
                diff = [
                    {"change": "create policy", "policy": audit.POLICY_NAME, "step": "ensure_policy"},
                    {"change": "enable policy", "policy": audit.POLICY_NAME, "step": "cut_over"},
                    {"change": f"turn per-user MFA off for {len(w.users)} users", "step": "disable_per_user"},
                ]
                diff += [
                    {"change": "turn security defaults off", "step": "cut_over"}
                ] * item.audit.security_defaults
                verdict = f"Would change {len(w.users)} users"  # fmt: skip
            elif w is not None:
                failed = sum(1 for k in w.users if w.fate(k)[1] == "failed")
                prefix = "restore" if run.mode == "rollback" else "migrate"
                counters.update({f"{prefix}_done": len(w.users) - failed, f"{prefix}_failed": failed})
                state.update(policy_id=t.policy_id, security_defaults_before=t.sd)
                if item.status == "succeeded":
                    verdict = {
                        "rollback": f"Rolled back: {len(w.users)} users restored",
                        "pilot": f"Pilot verified: per-user MFA is off for {len(w.users)} users",
                    }.get(
                        run.mode, f"Verified: per-user MFA is off for {len(w.users)} users; the policy is on"
                    )
            if run.big and item.started:
                state["snapshot_id"] = t.snapshot_pk
            started = item.started is not None
            heartbeat = now - 20 * SECOND if item.status == "running" else item.finished if started else None
            job, worker = (
                f"run{run.pk}-tenant{t.pk}-attempt1",
                f"worker-{item.pk % 12 + 1}:{4000 + item.pk % 997}",
            )
            yield (
                item.pk, run.pk, t.pk, item.status, checkpoint, current, 1, job, json.dumps(log),
                json.dumps(counters), json.dumps(state), json.dumps(diff), verdict, item.reason,
                item.status == "failed" and w is not None, TRACEBACK if item.status == "errored" else "",
                worker if started else "", _dt(heartbeat), _dt(item.started), _dt(item.finished),
                _dt(heartbeat or item.finished or run.created),
            )  # fmt: skip


def write_runs(cursor, runs: list[RunPlan], tenants: list[TenantPlan], now: int, progress) -> dict[str, int]:
    run_rows = (
        (r.pk, r.mode, r.status, r.pilot_group or None, "{}", r.rollback_of.pk if r.rollback_of else None,
         None, r.actor, False, None, None, None, _dt(r.created + MINUTE) if r.approver else None,
         _dt(r.created), _dt(r.finished), "{}")
        for r in runs
    )  # fmt: skip
    counts = {"runs": _copy(cursor, MigrationRun, RUN_COLUMNS, run_rows, progress, "runs")}
    counts["run items"] = _copy(cursor, RunItem, ITEM_COLUMNS, item_rows(runs, now), progress, "run items")
    big = {t.pk: next(i for i in t.items if i.run.big) for t in tenants}
    snapshots = (
        (t.snapshot_pk, big[t.pk].pk, t.pk, _dt((big[t.pk].started or big[t.pk].run.created) + 40 * SECOND),
         t.snapshot_sd, "[]", t.users, True)
        for t in tenants
    )  # fmt: skip
    columns = (
        "id",
        "item_id",
        "tenant_id",
        "taken_at",
        "security_defaults",
        "policies",
        "user_count",
        "complete",
    )
    counts["snapshots"] = _copy(cursor, TenantSnapshot, columns, snapshots, progress, "snapshots")
    users = (
        (t.snapshot_pk, t.pop.user_id(k), t.pop.upn(k), state, t.pop.enabled(k), t.pop.user_type(k),
         t.pop.registered(k))
        for t in tenants
        for k, state in enumerate(t.snapshot)
    )  # fmt: skip
    columns = (
        "snapshot_id",
        "user_id",
        "upn",
        "per_user_state",
        "account_enabled",
        "user_type",
        "mfa_registered",
    )
    counts["snapshot users"] = _copy(cursor, UserSnapshot, columns, users, progress, "snapshot users")
    columns = ("item_id", "user_id", "upn", "before", "wanted", "status", "http_status", "error", "purpose",
               "updated_at")  # fmt: skip
    counts["user outcomes"] = _copy(
        cursor, UserOutcome, columns, outcome_rows(runs, now), progress, "outcomes"
    )
    drifted = [t for t in tenants if t.state == "migrated_drift"]
    DriftFinding.objects.bulk_create(
        [
            DriftFinding(
                tenant_id=t.pk,
                kind="per_user_mfa",
                summary=f"{3 + t.index % 5} users have per-user MFA on again",
                detail={"count": 3 + t.index % 5, "users": [t.pop.upn(k) for k in range(2, 5 + t.index % 5)]},
                first_seen_at=_dt(now - (1 + t.index % 4) * 24 * HOUR),
                last_seen_at=_dt(now - HOUR),
            )
            for t in drifted
        ]
    )
    counts["drift findings"] = len(drifted)
    return counts


def outcome_rows(runs: list[RunPlan], now: int):
    """Each written user's outcome (a plan writes none): one row per item, purpose and user."""
    for run in runs:
        for item in run.items:
            w = item.writes
            if w is None or w.purpose == "plan":
                continue
            pop, at = w.population, _dt(item.finished or now)
            for k, was, wanted in zip(w.users, w.was, w.wanted, strict=True):
                if w.fate(k)[1] == "failed":
                    status, http, error = (
                        "failed",
                        403,
                        "Authorization_RequestDenied: Insufficient privileges",
                    )
                else:
                    status, http, error = "succeeded", 204, ""
                yield (item.pk, pop.user_id(k), pop.upn(k), was, wanted, status, http, error, w.purpose, at)


def write_staff(rng: random.Random, tenants: list[TenantPlan]) -> dict:
    """bench-staff: an Operator granted GRANTED tenants (the largest among them); bench-team: a Viewer who
    sees a tenth of the fleet through the group grants of its team."""
    assert {"Operator", "Viewer"} <= set(ROLES)
    largest = max(tenants, key=lambda t: t.users)
    others = [t.pk for t in tenants if t is not largest]
    granted = [largest.pk, *rng.sample(others, min(GRANTED - 1, len(others)))]
    staff = User.objects.create_user("bench-staff", password=PASSWORD, is_staff=True)
    staff.groups.add(Group.objects.get(name="Operator"))
    TenantGrant.objects.bulk_create([TenantGrant(tenant_id=pk, user=staff) for pk in granted])
    team = Group.objects.create(name="Bench team")
    member = User.objects.create_user("bench-team", password=PASSWORD, is_staff=True)
    member.groups.add(Group.objects.get(name="Viewer"), team)
    team_tenants = rng.sample([t.pk for t in tenants], max(1, len(tenants) // 10))
    TenantGrant.objects.bulk_create([TenantGrant(tenant_id=pk, group=team) for pk in team_tenants])
    return {
        "username": staff.username, "password": PASSWORD, "role": "Operator", "granted": sorted(granted),
        "team_user": member.username, "team_role": "Viewer", "team_group": team.name,
        "team_granted": len(team_tenants),
    }  # fmt: skip


CENSUS_COLUMNS = ("tenant_id", "generation", "user_id", "upn", "display_name", "user_type", "account_enabled",
                  "per_user_state", "mfa_registered", "methods")  # fmt: skip


def build(
    *, tenants: int = 1000, audit_rows: int = 10_000_000, seed: int = 7, progress=print, workers: int = 2
) -> dict:
    """Fill the (migrated, empty) PostgreSQL database with the data set; returns what was made.

    The result: `counts` (rows per table), `big_run` (its pk) and `runs` (every run's pk, oldest
    first), `largest_tenant` (pk) with `largest_users`, `tenants` (the first few pks and one per state),
    `staff` (usernames, password, grants), `chains` (how many, the largest and the fleet's size),
    `audit_ids` (first and last), `states` (tenants per migration state), `scale` (< 1 when `audit_rows`
    was too few for every user's writes) and `seconds` per phase. `workers` processes make the audit
    rows (1: in this process).
    """
    if connection.vendor != "postgresql":
        raise RuntimeError(
            "bench.scale_data writes through PostgreSQL's COPY: point DATABASE_URL at PostgreSQL"
        )
    if CustomerTenant.objects.exists() or AuditEvent.objects.exists():
        raise RuntimeError(
            "bench.scale_data fills a freshly migrated database: this one has tenants or audit rows"
        )
    rng, seconds = random.Random(seed), {}
    clock = [time.perf_counter()]
    began = clock[0]

    def phase(name: str) -> None:
        now_ = time.perf_counter()
        seconds[name] = round(now_ - clock[0], 1)
        clock[0] = now_
        progress(f"phase {name}: {seconds[name]} s")

    now = int(time.time()) * SECOND
    t0 = now - 365 * 24 * HOUR
    with transaction.atomic(), connection.cursor() as cursor:
        fleet = plan_tenants(rng, tenants, t0)
        runs = plan_runs(rng, fleet, t0, now)
        items = [i for r in runs for i in r.items]
        numbered = ((fleet, CustomerTenant, "pk"), (runs, MigrationRun, "pk"), (items, RunItem, "pk"),
                    (fleet, TenantSnapshot, "snapshot_pk"))  # fmt: skip
        for rows, model, pk in numbered:  # ids reserved from each table's sequence
            first = _reserve(cursor, model, len(rows))
            for n, row in enumerate(rows):
                setattr(row, pk, first + n)
        scale = 1.0
        while True:
            plan_writes(fleet, scale)
            need = audit.fleet_share(audit_rows) + sum(audit.fixed_rows(t) for t in fleet) + len(fleet)
            if need <= audit_rows:
                break
            scale *= 0.9 * audit_rows / need
            if scale < 1e-4:
                raise ValueError(f"audit_rows={audit_rows:,} is too few for {tenants:,} tenants' runs")
        plan_times(rng, runs, now)
        moved = plan_states(rng, fleet, now)
        chains = audit.plan_chains(rng, fleet, audit_rows, t0, now)
        phase("plan")
        counts = write_tenants(cursor, rng, fleet, progress)
        counts["census users"] = _copy(
            cursor, CensusUser, CENSUS_COLUMNS, census_rows(fleet), progress, "census"
        )
        phase("tenants and census")
        counts.update(write_runs(cursor, runs, fleet, now, progress))
        staff = write_staff(rng, fleet)
        phase("runs, snapshots, outcomes, staff")
        first_id = _reserve(cursor, AuditEvent, audit_rows)
        audit.plan_ids(chains, t0, first_id)
        deferred = (
            audit.indexes_deferred(cursor, AuditEvent, progress) if audit_rows >= 1_000_000 else nullcontext()
        )
        with deferred:
            heads = audit.copy_chains(cursor, chains, t0, seed, workers, progress)
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(chain=c, seq=s, row_hash=h) for c, (s, h) in heads.items()]
        )
        counts.update({"audit rows": audit_rows, "audit chains": len(heads)})
        phase("audit")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)")
    phase("vacuum and analyze" if not connection.in_atomic_block else "analyze")
    bad = audit.check_sample(300, seed)
    if bad:
        raise RuntimeError(f"{bad} sampled audit rows do not hash as compute_row_hash says")
    phase("check")
    largest = max(fleet, key=lambda t: t.users)
    by_state = {}
    for t in fleet:
        by_state.setdefault(t.decision[0], t.pk)
    biggest_chain = max(chains[:-1], key=lambda c: c.rows)
    result = {
        "counts": counts,
        "big_run": next(r.pk for r in runs if r.big),
        "runs": [r.pk for r in runs],
        "largest_tenant": largest.pk,
        "largest_users": largest.users,
        "tenants": {"first": [t.pk for t in fleet[:5]], "by_state": by_state},
        "staff": staff,
        "chains": {
            "count": len(chains),
            "fleet_rows": chains[-1].rows,
            "largest": biggest_chain.chain,
            "largest_rows": biggest_chain.rows,
            "largest_tenant_rows": chains[largest.index].rows,
        },  # fmt: skip
        "audit_ids": [first_id, first_id + audit_rows - 1],
        "states": dict(Counter(t.decision[0] for t in fleet).most_common()),
        "states_moved": moved,
        "scale": round(scale, 4),
        "seconds": {**seconds, "total": round(time.perf_counter() - began, 1)},
    }
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.scale_data", description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--audit-rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="processes making audit rows (1: none)")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to the PostgreSQL database to fill (it is migrated first)")
    call_command("migrate", "--noinput", "-v", "0")
    result = build(tenants=args.tenants, audit_rows=args.audit_rows, seed=args.seed, workers=args.workers)
    result["staff"]["granted"] = f"{len(result['staff']['granted'])} tenants"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
