"""The audit half of `bench.scale_data`: millions of hash-chained audit rows, and the users they name.

`plan_chains` plans each chain (one per tenant, plus "fleet") from `scale_data`'s plan of the fleet as
*episodes*: a run item's Graph writes, a staff action, a scheduler's periodic checks. An episode's row i
is written at `start + i * gap`, so the parent knows, without making a single row, how many rows each
chain has on each day. `plan_ids` hands out row ids day by day: ids follow time across chains as a live
console's would, and an outcome row can name its intent's id before either exists. Then `copy_chains`
makes the rows: worker processes walk their chains day by day (each chain's episodes merged by time),
spell each row's evidence exactly as `compute_row_hash` does (canonical JSON, sorted keys, created_at as
UTC isoformat with microseconds), hash it onto the previous row, and send PostgreSQL `COPY` text back to
the parent, which streams it in. `check_sample` reads rows back through the ORM and recomputes their
hashes with `compute_row_hash`; `indexes_deferred` builds the audit table's indexes once, after the load.

`Population` is a tenant's users as pure functions of an index (id, UPN, per-user state, registration),
shared by the census, the snapshot, the outcomes and the audit rows without keeping them all in memory.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import random
import struct
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from heapq import heappop, heappush, heapreplace
from json.encoder import encode_basestring_ascii as enc
from multiprocessing.connection import wait

from migrations_engine.audit.models import (
    EVIDENCE_FIELDS,
    FLEET_CHAIN,
    GENESIS_HASH,
    AuditEvent,
    canonical_json,
)
from migrations_engine.audit.models import compute_row_hash as row_hash_of
from migrations_engine.graph.resources.per_user_mfa import SET_ACTION, requirements_path

SECOND, MINUTE, HOUR, DAY = 1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000  # µs
FLUSH_ROWS = 5000  # rows per message from a worker
FIRST = (
    "ana", "ben", "carla", "dev", "elena", "farid", "grace", "hiro", "ines", "jonas", "kemal", "lena",
    "marco", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tara", "umar", "vera", "wade", "xena",
    "yusuf", "zoe", "alex", "bruno", "chloe", "diego", "emma", "felix", "gita", "hugo", "ivy", "jade",
    "karl", "lucia", "mateo", "nora",
)  # fmt: skip
LAST = (
    "silva", "meyer", "novak", "okafor", "patel", "rossi", "schmidt", "tanaka", "umarov", "varga",
    "weber", "xu", "young", "zimmer", "andersen", "berg", "costa", "dubois", "evans", "fischer", "garcia",
    "hansen", "ito", "jensen", "kowalski", "larsen", "moreau", "nielsen", "olsen", "peters", "quist",
    "ramos", "santos", "torres", "ueda", "vogel", "walsh", "yilmaz", "zhang", "keller", "lindqvist",
    "murphy", "obrien", "park", "reyes", "sato", "tran", "vance", "wolf", "khan",
)  # fmt: skip
STAFF = tuple(f"{FIRST[i]}.{LAST[(i * 7) % len(LAST)]}" for i in range(36))  # the MSP's engineers
SCHEDULERS = tuple(f"scheduler:wave-{n}" for n in range(1, 13))
METHODS = (
    ["microsoftAuthenticatorPush"],
    ["microsoftAuthenticatorPush", "softwareOneTimePasscode"],
    ["mobilePhone"],
    ["fido2", "microsoftAuthenticatorPush"],
    ["windowsHelloForBusiness"],
)
POLICY_PATH = "/v1.0/identity/conditionalAccess/policies"
SD_PATH = "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy"
POLICY_NAME = "[GRANT] Require MFA all users"

# Evidence fields in the order canonical JSON (sorted keys) spells them; a row is made as a "spec": the
# 19 fields that vary, in this order without chain, created_at, seq and tenant_id, plus one slot (a list)
# that receives the row's id once it has one (an intent's, for its outcome rows to point at).
SORTED_FIELDS = (
    "action", "actor", "after", "before", "chain", "client_request_id", "created_at", "detail", "error",
    "http_status", "intent_id", "item_id", "kind", "method", "outcome", "path", "request_body",
    "request_id", "run_id", "seq", "step", "target", "tenant_id",
)  # fmt: skip
assert SORTED_FIELDS == tuple(sorted(EVIDENCE_FIELDS)), "the audit evidence fields changed"
TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in SORTED_FIELDS) + "}"
# The COPY columns, in the order `_produce` writes them.
COLUMNS = (
    "id", "created_at", "tenant_id", "chain", "seq", "prev_hash", "row_hash", "kind", "actor", "run_id",
    "item_id", "step", "action", "method", "path", "target", "request_body", "before", "after", "outcome",
    "intent_id", "http_status", "request_id", "client_request_id", "error", "detail",
)  # fmt: skip
COPY_SQL = f"COPY {AuditEvent._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
assert set(COLUMNS) == {f.column for f in AuditEvent._meta.concrete_fields}, "the audit table changed"


def json_text(value) -> str:
    """A JSON value as its row stores and hashes it; never spelled with a COPY special character."""
    text = canonical_json(value)
    assert not any(c in text for c in "\\\t\n\r"), text
    return text


def json_template(value, *names: str) -> str:
    """A %-template of a JSON value: the string values "@name" become %s slots, in `names` order."""
    text = json_text(value).replace("%", "%%")
    for name in names:
        text = text.replace(f'"@{name}"', "%s", 1)
    return text


# --- the users of a tenant ---------------------------------------------------------------------------


class Population:
    """A tenant's users as functions of their index k: user 0 and 1 are its break-glass accounts."""

    STATES = ("enabled", "enforced", "disabled")

    def __init__(self, users: int, domain: str, salt: int, enabled_pct: int, enforced_pct: int, reg_pct: int):
        self.users, self.domain, self.salt = users, domain, salt
        h = f"{salt:016x}"  # the first four groups of a GUID, the same for every user of the tenant
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[salt % 4]}{h[1:4]}-"
        self.state_table = ["enabled"] * enabled_pct + ["enforced"] * enforced_pct
        self.state_table += ["disabled"] * (100 - len(self.state_table))
        self.reg_table = [None] * 3 + [True] * reg_pct
        self.reg_table += [False] * (100 - len(self.reg_table))

    def user_id(self, k: int) -> str:
        return f"{self.prefix}{(k * 0x9E3779B97F4B + self.salt) & 0xFFFFFFFFFFFF:012x}"

    def _name(self, k: int) -> tuple[str, str, str]:
        size = len(FIRST) * len(LAST)
        combo = ((k % size) * 7919 + self.salt) % size  # 7919 is prime to size: each name once per block
        suffix = "" if k < size else str(k // size + 1)
        return FIRST[combo % len(FIRST)], LAST[combo // len(FIRST)], suffix

    def upn(self, k: int) -> str:
        if k < 2:
            return f"breakglass{k + 1}@{self.domain}"
        first, last, suffix = self._name(k)
        if self.user_type(k) == "Guest":
            return f"{first}.{last}{suffix}_outlook.com#EXT#@{self.domain}"
        return f"{first}.{last}{suffix}@{self.domain}"

    def display_name(self, k: int) -> str:
        if k < 2:
            return f"Break Glass {k + 1}"
        first, last, suffix = self._name(k)
        return f"{first.title()} {last.title()}{suffix}"

    def user_type(self, k: int) -> str:
        return "Guest" if k >= 2 and k % 23 == 5 else "Member"

    def enabled(self, k: int) -> bool:
        return k < 2 or k % 31 != 7

    def before(self, k: int) -> str:
        """The per-user MFA state before any run touched the user."""
        return "disabled" if k < 2 else self.state_table[(k * 37 + self.salt) % 100]

    def registered(self, k: int) -> bool | None:
        """Registered for MFA in the registration report (None: not in it)."""
        return True if k < 2 else self.reg_table[(k * 53 + (self.salt >> 8)) % 100]

    def methods(self, k: int) -> list[str]:
        return list(METHODS[(k + self.salt) % len(METHODS)]) if self.registered(k) else []


# --- what each user's write does ---------------------------------------------------------------------


@dataclass
class Writes:
    """One item's per-user writes: user `users[i]` from `was[i]` to `wanted[i]`, in $batches of 20. A 429
    sends the user again as a new intent; a last attempt succeeds, fails (403) or goes unanswered
    (`unknown`, then a `reconciled` row that read it back as done). A plan only records dry-run rows."""

    population: Population
    users: list[int]
    was: list[str]
    wanted: list[str]
    purpose: str  # "migrate", "restore" or "plan"
    salt: int
    retry: float = 0.0  # 429s per user on average
    fail_permille: int = 0

    def fate(self, k: int) -> tuple[int, str]:
        """(429s before the last attempt, how the last attempt ended) for user k."""
        if self.purpose == "plan":
            return 0, "dry_run"
        h = (((k + 1) * 0x9E3779B1) ^ self.salt) * 0x85EBCA6B & 0xFFFFFFFF
        base = int(self.retry)
        retries = base + (1 if h % 1000 < (self.retry - base) * 1000 else 0)
        end = (h >> 16) % 1000
        if end < self.fail_permille:
            return retries, "failed"
        return retries, "unknown" if end >= 997 else "succeeded"

    def rows(self) -> int:
        """Audit rows these writes make: exactly what `_write_rows` yields."""
        if self.purpose == "plan":
            return len(self.users)
        total = 0
        for k in self.users:
            retries, end = self.fate(k)
            total += 2 * (retries + 1) + (end == "unknown")
        return total


@dataclass
class Item:
    """One run item's audit rows, written from `start` every `gap` µs (see `item_rows` for the order)."""

    run_id: int
    item_id: int
    actor: str
    mode: str
    writes: Writes | None  # None: it stopped before any write
    security_defaults: bool = False
    policy_id: str = ""
    step: str = "disable_per_user"

    def rows(self) -> int:
        if self.writes is None:
            return 0
        if self.mode == "plan":
            return 1 + self.security_defaults + self.writes.rows()
        if self.mode == "rollback":
            return self.writes.rows() + 2 * self.security_defaults
        if self.mode == "pilot":
            return 2 + self.writes.rows()
        return 4 + 2 * self.security_defaults + self.writes.rows()


@dataclass
class Episode:
    start: int  # µs since the epoch of row 0
    gap: int  # µs between rows
    rows: int
    make: Callable[[ChainContext], Iterator[tuple]]


@dataclass
class Chain:
    """One audit chain: its episodes, and (after `plan_ids`) its rows per day and their first ids."""

    index: int
    chain: str
    tenant_pk: int | None
    episodes: list[Episode] = field(default_factory=list)
    day_rows: dict[int, int] = field(default_factory=dict)
    first_id: dict[int, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.episodes)


class ChainContext:
    """What a chain's episodes draw on while making rows: a random source of its own (request ids)."""

    def __init__(self, seed: int, chain: Chain) -> None:
        self.rng = random.Random(seed * 1_000_003 + chain.index)

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


# --- rows of each kind of episode (specs: see SORTED_FIELDS) -----------------------------------------


def staff_spec(actor: str, action: str, run_id: int | None, detail: str) -> tuple:
    return (action, actor, None, None, "", detail, "", None, None, None, "staff_action", "", "recorded", "",
            None, "", run_id, "", "", None)  # fmt: skip


def staff_rows(rows: list[tuple[str, str, int | None, str]]) -> Callable[[ChainContext], Iterator[tuple]]:
    """An episode of staff actions: (actor, action, run_id, detail JSON) each."""

    def make(ctx: ChainContext) -> Iterator[tuple]:
        for actor, action, run_id, detail in rows:
            yield staff_spec(actor, action, run_id, detail)

    return make


def periodic_rows(actor: str, action: str, template: str, args: Callable[[int], tuple]):
    """A scheduler's rows: the detail of row i is `template % args(i)`."""

    def make(ctx: ChainContext) -> Iterator[tuple]:
        i = 0
        while True:
            yield staff_spec(actor, action, None, template % args(i))
            i += 1

    return make


def _pair(
    ctx, item: Item, step, action, method, path, target, body, before, status, after
) -> Iterator[tuple]:
    """One audited Graph write: its intent, then its outcome."""
    cid, ref = ctx.uuid(), [0]
    yield (action, item.actor, None, before, cid, "{}", "", None, None, item.item_id, "graph_write", method,
           "intent", path, body, "", item.run_id, step, target, ref)  # fmt: skip
    yield (action, item.actor, after, None, cid, "{}", "", status, ref, item.item_id, "graph_write", method,
           "succeeded", path, None, ctx.uuid(), item.run_id, step, target, None)  # fmt: skip


_STATE = {s: json_text({"perUserMfaState": s}) for s in Population.STATES}
_READ_BACK = {s: json_text({"read_back": s, "result": "succeeded"}) for s in Population.STATES}
_SD = {b: json_text({"isEnabled": b}) for b in (True, False)}


def _write_rows(ctx: ChainContext, item: Item) -> Iterator[tuple]:
    """Per-user writes in $batches of 20: intents, then their outcomes; 429s go round again."""
    w, pop = item.writes, item.writes.population
    actor, run_id, item_id, step = item.actor, item.run_id, item.item_id, item.step
    if w.purpose == "plan":
        for k, was, wanted in zip(w.users, w.was, w.wanted, strict=True):
            yield (SET_ACTION, actor, None, _STATE[was], ctx.uuid(), "{}", "", None, None, item_id,
                   "graph_write", "PATCH", "dry_run", "/beta" + requirements_path(pop.user_id(k)),
                   _STATE[wanted], "", run_id, step, pop.upn(k), None)  # fmt: skip
        return
    pending = deque(
        (k, was, wanted, *w.fate(k)) for k, was, wanted in zip(w.users, w.was, w.wanted, strict=True)
    )
    unknown = []
    while pending:
        sent = []
        for _ in range(min(20, len(pending))):
            k, was, wanted, retries, end = pending.popleft()
            path, upn, cid, ref = "/beta" + requirements_path(pop.user_id(k)), pop.upn(k), ctx.uuid(), [0]
            sent.append((k, was, wanted, retries, end, path, upn, cid, ref))
            yield (SET_ACTION, actor, None, _STATE[was], cid, "{}", "", None, None, item_id, "graph_write",
                   "PATCH", "intent", path, _STATE[wanted], "", run_id, step, upn, ref)  # fmt: skip
        for k, was, wanted, retries, end, path, upn, cid, ref in sent:
            if retries:
                pending.append((k, was, wanted, retries - 1, end))
                outcome, status, error = "failed", 429, "429"
            elif end == "failed":
                outcome, status, error = "failed", 403, "Authorization_RequestDenied"
            elif end == "unknown":
                outcome, status, error = "unknown", None, "ReadTimeout: no answer within 30 s"
                unknown.append((wanted, path, upn, cid, ref))
            else:
                outcome, status, error = "succeeded", 204, ""
            yield (SET_ACTION, actor, None, None, cid, "{}", error, status, ref, item_id, "graph_write",
                   "PATCH", outcome, path, None, ctx.uuid() if status else "", run_id, step, upn,
                   None)  # fmt: skip
    for wanted, path, upn, cid, ref in unknown:
        yield (SET_ACTION, actor, None, None, cid, _READ_BACK[wanted], "", None, ref, item_id,
               "reconciliation", "PATCH", "reconciled", path, None, "", run_id, step, upn, None)  # fmt: skip


def item_rows(item: Item) -> Callable[[ChainContext], Iterator[tuple]]:
    """A run item's Graph writes in pipeline order: the policy in report-only, the cut-over (policy on,
    security defaults off), then per-user MFA off; a pilot skips the cut-over; a plan records dry-run rows;
    a rollback restores per-user states, then security defaults."""
    grant, draft = {"builtInControls": ["mfa"], "operator": "OR"}, "enabledForReportingButNotEnforced"
    policy = json_text({"displayName": POLICY_NAME, "grantControls": grant, "state": draft})
    created = json_text({"id": item.policy_id, "state": draft})
    on, report_only = json_text({"state": "enabled"}), json_text({"state": draft})
    policy_path = f"{POLICY_PATH}/{item.policy_id}"

    def make(ctx: ChainContext) -> Iterator[tuple]:
        if item.mode == "plan":
            yield ("policy.create", item.actor, None, None, ctx.uuid(), "{}", "", None, None, item.item_id,
                   "graph_write", "POST", "dry_run", POLICY_PATH, policy, "", item.run_id, "ensure_policy",
                   POLICY_NAME, None)  # fmt: skip
            if item.security_defaults:
                yield ("sd.disable", item.actor, None, None, ctx.uuid(), "{}", "", None, None, item.item_id,
                       "graph_write", "PATCH", "dry_run", SD_PATH, _SD[False], "", item.run_id, "cut_over",
                       "", None)  # fmt: skip
            yield from _write_rows(ctx, item)
            return
        if item.mode == "rollback":
            yield from _write_rows(ctx, item)
            if item.security_defaults:
                sd = ("restore_security_defaults", "sd.reenable", "PATCH", SD_PATH, "", _SD[True], _SD[False])
                yield from _pair(ctx, item, *sd, 204, None)
            return
        create = (
            "ensure_policy",
            "policy.create",
            "POST",
            POLICY_PATH,
            POLICY_NAME,
            policy,
            None,
            201,
            created,
        )
        yield from _pair(ctx, item, *create)
        if item.mode == "full":
            enable = (
                "cut_over",
                "policy.enable",
                "PATCH",
                policy_path,
                item.policy_id,
                on,
                report_only,
                204,
                on,
            )
            yield from _pair(ctx, item, *enable)
            if item.security_defaults:
                sd = ("cut_over", "sd.disable", "PATCH", SD_PATH, "", _SD[False], _SD[True], 204, None)
                yield from _pair(ctx, item, *sd)
        yield from _write_rows(ctx, item)

    return make


FLEET_ACTIONS = (
    ("staff.signed_in", 30), ("staff.second_factor_passed", 30), ("wave.slot_fired", 8), ("wave.released", 6),
    ("wave.created", 2), ("audit.exported", 10), ("tenants.imported", 1), ("staff.reauthenticated", 8),
    ("staff.second_factor_failed", 2), ("staff.locked_out", 1), ("staff.unlocked", 1), ("run.swept", 1),
)  # fmt: skip


def fleet_rows(ctx: ChainContext) -> Iterator[tuple]:
    """The fleet chain: sign-ins and second factors, waves, exports and the like, without a tenant."""
    actions, weights = zip(*FLEET_ACTIONS, strict=True)
    rng, n = ctx.rng, 0
    while True:
        n += 1
        action = rng.choices(actions, weights)[0]
        staff = STAFF[rng.randrange(len(STAFF))]
        if action.startswith("wave."):
            wave = rng.randrange(len(SCHEDULERS))
            actor, detail = SCHEDULERS[wave], json_text({"ring": rng.randrange(4), "wave": wave + 1})
        elif action == "audit.exported":
            actor, detail = (
                "scheduler:export",
                json_text({"file": f"audit-fleet-{n:06d}.jsonl", "rows": n * 7}),
            )
        elif action == "staff.signed_in":
            actor = staff
            detail = json_text({"ip_address": f"192.0.2.{rng.randrange(1, 255)}", "method": "password"})
        elif action == "staff.second_factor_passed":
            actor, detail = (
                staff,
                json_text({"with": rng.choice(("totp", "totp", "backup_code", "webauthn"))}),
            )
        elif action in ("staff.locked_out", "staff.unlocked"):
            actor, detail = "system", json_text({"ip_address": "192.0.2.77", "username": staff})
        else:
            actor, detail = staff, "{}"
        yield staff_spec(actor, action, None, detail)


# --- planning each chain: what a tenant's runs, staff and schedulers wrote ----------------------------


def _staff_rows(item) -> list[tuple]:
    """What a run records for each of its items when it starts (and when it is approved)."""
    run = item.run
    detail = {"awaiting_approval": bool(run.approver), "mode": run.mode, "pilot_group_id": run.pilot_group}
    rows = [(run.actor, "run.started", run.pk, json_text(detail))]
    if run.approver:
        rows.append(
            (run.approver, "run.approved", run.pk, json_text({"mode": run.mode, "started_by": run.actor}))
        )
    return rows


def _onboarding(t) -> list[tuple]:
    """A tenant's first rows: added, consent recorded, break-glass accounts set."""
    who = STAFF[t.index % len(STAFF)]
    onboarded = json_text({"domain": t.domain, "tenant_id": str(t.tenant_id)})
    consent = json_text({"missing_roles": t.missing, "status": t.consent})
    rows = [(who, "tenant.onboarded", None, onboarded), (who, "consent.recorded", None, consent)]
    if t.block != "break_glass":
        rows.append((who, "tenant.break_glass_set", None, json_text({"accounts": 2, "minimum_count": 2})))
    return rows


def fixed_rows(t) -> int:
    """The tenant's audit rows before the scheduler's: onboarding, run starts, writes, cancellations."""
    rows = len(_onboarding(t))
    for item in t.items:
        rows += len(_staff_rows(item)) + item.rows + (item.status == "cancelled")
    return rows


def fleet_share(audit_rows: int) -> int:
    """Rows of the fleet chain (sign-ins, waves, exports): half a percent of the log."""
    return max(20, round(audit_rows * 0.005))


def plan_chains(rng: random.Random, tenants: list, audit_rows: int, t0: int, now: int) -> list:
    """Every chain's episodes, `audit_rows` rows in all: what the tenant's runs wrote, its onboarding, and
    the scheduler's checks (drift once migrated, consent before) filling each chain to its share."""
    fleet_size = fleet_share(audit_rows)
    filler = audit_rows - fleet_size - sum(fixed_rows(t) for t in tenants)
    largest = max(tenants, key=lambda t: t.users)
    weights = [rng.uniform(0.7, 1.3) * (5 if t is largest else 1) for t in tenants]
    share = [max(1, int(filler * w / sum(weights))) for w in weights]
    share[tenants.index(largest)] += filler - sum(share)
    chains = []
    for t, rows in zip(tenants, share, strict=True):
        chain = Chain(t.index, str(t.tenant_id), t.pk)
        eps = chain.episodes
        eps.append(Episode(t.onboarded, HOUR, len(_onboarding(t)), staff_rows(_onboarding(t))))
        for n, item in enumerate(t.items):
            started = _staff_rows(item)
            at = item.run.created + (t.index * 997 + n) % 1000 * 1000  # the run starts every item at once
            eps.append(Episode(at, MINUTE, len(started), staff_rows(started)))
            if item.audit is not None and item.rows:
                eps.append(Episode(item.started, item.gap, item.rows, item_rows(item.audit)))
            if item.status == "cancelled":
                cancel = [(item.run.approver or item.run.actor, "run.cancelled", item.run.pk, "{}")]
                eps.append(Episode(item.finished, 0, 1, staff_rows(cancel)))
        eps.extend(_scheduler_episodes(t, rows, now))
        chains.append(chain)
    fleet = Chain(len(tenants), FLEET_CHAIN, None)
    gap = (now - 10 * MINUTE - t0 - HOUR) // fleet_size
    fleet.episodes.append(Episode(t0 + HOUR, gap, fleet_size, fleet_rows))
    chains.append(fleet)
    assert sum(c.rows for c in chains) == audit_rows
    return chains


def _scheduler_episodes(t, rows: int, now: int) -> list:
    """`rows` scheduler rows evenly from a day after onboarding: consent re-checks until the tenant was
    first migrated, drift checks after."""
    start, end = t.onboarded + 24 * HOUR, now - 10 * MINUTE
    gap = (end - start) // rows
    migrated = next((i for i in t.items if i.status == "succeeded" and i.run.mode == "full"), None)
    before = rows if migrated is None else min(rows, max(0, (migrated.finished - start) // gap + 1))
    consent = json_template({"error": "", "missing_roles": t.missing, "status": t.consent})
    eps = []
    if before:
        make = periodic_rows("scheduler:consent", "consent.rechecked", consent, lambda i: ())
        eps.append(Episode(start, gap, before, make))
    if rows - before:
        drift = {"check": "@check", "compared_with_run": migrated.run.pk, "found": {}, "resolved": [],
                 "status": "clean", "users_checked": t.users}  # fmt: skip
        template, first = json_template(drift, "check"), t.index * 100_000
        make = periodic_rows("scheduler:drift", "drift.checked", template, lambda i: (first + i,))
        eps.append(Episode(start + before * gap, gap, rows - before, make))
    return eps


@contextmanager
def indexes_deferred(cursor, model, progress):
    """Drop the table's secondary indexes, unique and foreign-key constraints for the block, then make
    them again (the same definitions): a bulk load then builds each b-tree once, sorted, instead of
    inserting ten million keys into each of them one by one (with 128 MB of shared buffers)."""
    table = model._meta.db_table
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
        " AND contype IN ('u', 'f') ORDER BY contype DESC, conname",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
        " WHERE indrelid = %s::regclass AND NOT indisprimary AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)",
        [table],
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    yield
    started = time.perf_counter()
    cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    made = len(indexes) + len(constraints)
    progress(f"{table}: {made} indexes and constraints made again in {time.perf_counter() - started:.1f} s")


# --- planning ids, and making the rows ---------------------------------------------------------------


def plan_ids(chains: list[Chain], t0: int, first_id: int) -> int:
    """Count each chain's rows per day and hand out ids day by day, chain by chain; returns the next id."""
    for chain in chains:
        counts: dict[int, int] = {}
        for e in chain.episodes:
            if e.rows <= 0:
                continue
            last = e.start + (e.rows - 1) * e.gap
            for day in range((e.start - t0) // DAY, (last - t0) // DAY + 1):
                lo = 0 if e.gap == 0 else max(0, -(-(t0 + day * DAY - e.start) // e.gap))
                hi = e.rows if e.gap == 0 else min(e.rows, -(-(t0 + (day + 1) * DAY - e.start) // e.gap))
                if hi > lo:
                    counts[day] = counts.get(day, 0) + hi - lo
        chain.day_rows = counts
    next_id = first_id
    for day in sorted({d for chain in chains for d in chain.day_rows}):
        for chain in chains:
            if day in chain.day_rows:
                chain.first_id[day] = next_id
                next_id += chain.day_rows[day]
    return next_id


def _produce(chains: list[Chain], t0: int, seed: int, send: Callable[[bytes, int], None]) -> dict:
    """Make every row of `chains` day by day, hand COPY text to `send`; returns each chain's last row."""
    heads, lines, iso_sec, iso_prefix = {}, [], -1, ""
    states = []
    for chain in chains:
        ctx, heap = ChainContext(seed, chain), []
        for n, e in enumerate(chain.episodes):
            if e.rows > 0:
                gen = e.make(ctx)
                heappush(heap, (e.start, n, 0, next(gen), gen))
        tenant = "null" if chain.tenant_pk is None else str(chain.tenant_pk)
        states.append([chain, heap, 0, GENESIS_HASH, enc(chain.chain), tenant])
    days = sorted({d for chain in chains for d in chain.day_rows})
    for day in days:
        day_end = t0 + (day + 1) * DAY
        for state in states:
            chain, heap, seq, prev, chain_json, tenant_json = state
            planned = chain.day_rows.get(day, 0)
            if not planned:
                continue
            row_id, chain_text = chain.first_id[day], chain.chain
            tenant_copy = "\\N" if chain.tenant_pk is None else tenant_json
            for _ in range(planned):
                ts, n, i, spec, gen = heap[0]
                if ts >= day_end:
                    raise RuntimeError(f"chain {chain_text}: fewer rows on day {day} than planned")
                (action, actor, after, before, cid, detail, error, http, intent, item, kind, method, outcome,
                 path, body, request_id, run, step, target, ref) = spec  # fmt: skip
                seq += 1
                if ref is not None:
                    ref[0] = row_id
                if intent is not None:
                    intent = intent[0]
                sec, micro = divmod(ts, 1_000_000)
                if sec != iso_sec:
                    iso_sec, iso_prefix = sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
                created = f"{iso_prefix}{micro:06d}+00:00"
                evidence = TEMPLATE % (
                    enc(action), enc(actor), after or "null", before or "null", chain_json, enc(cid),
                    f'"{created}"', detail, enc(error), "null" if http is None else http,
                    "null" if intent is None else intent, "null" if item is None else item, enc(kind),
                    enc(method), enc(outcome), enc(path), body or "null", enc(request_id),
                    "null" if run is None else run, seq, enc(step), enc(target), tenant_json,
                )  # fmt: skip
                digest = hashlib.sha256((evidence + prev).encode()).hexdigest()
                lines.append("\t".join((
                    str(row_id), created, tenant_copy, chain_text, str(seq), prev, digest, kind, actor,
                    "\\N" if run is None else str(run), "\\N" if item is None else str(item), step, action,
                    method, path, target, body or "\\N", before or "\\N", after or "\\N", outcome,
                    "\\N" if intent is None else str(intent), "\\N" if http is None else str(http),
                    request_id, cid, error, detail,
                )))  # fmt: skip
                prev, row_id = digest, row_id + 1
                e = chain.episodes[n]
                if i + 1 < e.rows:
                    heapreplace(heap, (e.start + (i + 1) * e.gap, n, i + 1, next(gen), gen))
                else:
                    heappop(heap)
                if len(lines) >= FLUSH_ROWS:
                    send(("\n".join(lines) + "\n").encode(), len(lines))
                    lines = []
            state[2], state[3] = seq, prev
            heads[chain_text] = (seq, prev)
    if lines:
        send(("\n".join(lines) + "\n").encode(), len(lines))
    for chain, heap, *_ in states:
        if heap:
            raise RuntimeError(f"chain {chain.chain}: rows left after the last planned day")
    return heads


def _worker(conn, chains: list[Chain], t0: int, seed: int) -> None:
    """A worker process: rows of its chains to the parent as b"D" + row count + COPY text messages."""
    try:
        heads = _produce(
            chains, t0, seed, lambda data, n: conn.send_bytes(b"D" + struct.pack("<I", n) + data)
        )
        conn.send_bytes(b"R" + pickle.dumps(heads))
    except BaseException:  # anything a worker hits goes back to the parent, which raises it
        conn.send_bytes(b"E" + traceback.format_exc().encode())
    finally:
        conn.close()


def copy_chains(cursor, chains: list[Chain], t0: int, seed: int, workers: int, progress) -> dict:
    """COPY every chain's rows into the audit table; returns {chain: (last seq, last row_hash)}."""
    total, done, started = sum(c.rows for c in chains), 0, time.monotonic()
    last_report = started

    def report(n: int) -> None:
        nonlocal done, last_report
        done += n
        now = time.monotonic()
        if now - last_report >= 10 or done == total:
            last_report = now
            rate = done / max(now - started, 1e-9)
            progress(f"audit: {done:,} / {total:,} rows ({rate:,.0f} rows/s)")

    with cursor.copy(COPY_SQL) as copy:
        if workers <= 1:

            def write(data: bytes, n: int) -> None:
                copy.write(data)
                report(n)

            return _produce(chains, t0, seed, write)
        context = multiprocessing.get_context("fork")  # the plan is inherited, not pickled
        parts: list[list[Chain]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for chain in sorted(chains, key=lambda c: -c.rows):
            least = loads.index(min(loads))
            parts[least].append(chain)
            loads[least] += chain.rows
        procs, conns, heads = [], [], {}
        try:
            for part in parts:
                part.sort(key=lambda c: c.index)
                reader, writer = context.Pipe(duplex=False)
                proc = context.Process(target=_worker, args=(writer, part, t0, seed), daemon=True)
                proc.start()
                writer.close()
                procs.append(proc)
                conns.append(reader)
            live = list(conns)
            while live:
                for conn in wait(live):
                    try:
                        message = conn.recv_bytes()
                    except EOFError as exc:
                        raise RuntimeError("an audit worker died without a word") from exc
                    tag = message[:1]
                    if tag == b"D":
                        copy.write(memoryview(message)[5:])
                        report(struct.unpack_from("<I", message, 1)[0])
                    elif tag == b"R":
                        heads.update(pickle.loads(message[1:]))
                        live.remove(conn)
                    else:
                        raise RuntimeError("an audit worker failed:\n" + message[1:].decode())
        finally:
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()
    return heads


def check_sample(count: int, seed: int) -> int:
    """Read `count` random audit rows back through the ORM and recompute each hash with the model's
    `compute_row_hash`, and each `prev_hash` against the row before; returns how many disagree."""
    rng = random.Random(seed)
    top = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    low = AuditEvent.objects.order_by("id").values_list("id", flat=True).first() or 0
    ids = {rng.randint(low, top) for _ in range(count)} if top else set()
    bad = 0
    for event in AuditEvent.objects.filter(id__in=ids):
        if row_hash_of(event.evidence(), event.prev_hash) != event.row_hash:
            bad += 1
        elif event.seq > 1:
            before = AuditEvent.objects.filter(chain=event.chain, seq=event.seq - 1).values_list("row_hash")
            bad += before.get()[0] != event.prev_hash
        else:
            bad += event.prev_hash != GENESIS_HASH
    return bad
