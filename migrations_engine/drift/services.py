"""The drift watch: re-read a migrated tenant and record what is no longer as its migration left it.

A check compares the tenant with its latest verified pilot or full run (`migrated.py`): per-user MFA
back on for anyone in scope, security defaults back on, the policy that run made or adopted deleted,
not enforced or changed (grant, scope, apps, exclusions), a break-glass account or group no longer
excluded, and users the run's snapshot did not have who are not MFA-registered. It only reads, through
the Graph client with no audit context (so it cannot write), paced like every other call.

Each check is a `DriftCheck` row; what it finds opens or refreshes a `DriftFinding` (at most one open per
tenant and kind) and what it no longer finds is resolved. A check that cannot read the tenant (consent
revoked, a permission missing, Graph refusing or throttling past every retry) is recorded as an error
and changes no finding. New findings are e-mailed once, one mail per check (see `notify`).

"Remediate" starts a normal audited run of the same scope (`start_remediation`): its ensure-policy step
puts the policy back as the verified run left it (or creates it again), the cut-over turns security
defaults off and the policy on, and per-user MFA is disabled again for everyone in scope. Unregistered
users have no Graph fix: they register at their next sign-in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from migrations_engine import queueing
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.census.read import take_census
from migrations_engine.choices import ACTIVE_ITEM_STATUSES, DriftCheckStatus, DriftKind, RunMode
from migrations_engine.graph import (
    GraphClient,
    GraphConfig,
    GraphConfigError,
    GraphError,
    GraphUnavailable,
    TokenError,
)
from migrations_engine.graph.auth import forget_tokens
from migrations_engine.graph.config import unusable
from migrations_engine.graph.permissions import missing_roles, missing_roles_in_words
from migrations_engine.graph.resources.grants import strength_id
from migrations_engine.graph.resources.named_locations import canonical, get_location, ranges_of
from migrations_engine.graph.resources.policies import get_policy, normalized
from migrations_engine.graph.resources.session_policy import frequency_of
from migrations_engine.graph.resources.users import group_members, resolve_break_glass
from migrations_engine.models import DriftCheck, DriftFinding, MigrationRun, RunItem, UserSnapshot
from migrations_engine.runs.migrated import baseline_policy, first_migration_item, migrated_item
from migrations_engine.runs.services import DEFAULT_OPTIONS, start_run
from migrations_engine.runs.tenant_state import refresh_quietly
from migrations_engine.steps.base import graph_failure
from staff.actors import Actor, actor_label
from tenants.choices import CensusStatus
from tenants.models import CustomerTenant
from tenants.validators import break_glass_account_problems, describe_problems

logger = logging.getLogger(__name__)

WATCH_ACTOR = "scheduler:drift-watch"
USERS_LISTED = 50  # users named in a finding; the count says how many more
USERS_MAILED = 10
# What a check reads (the write permissions are the remediation run's business).
READ_ROLES = (
    "Organization.Read.All",
    "User.Read.All",
    "GroupMember.Read.All",
    "Policy.Read.All",
    "AuditLog.Read.All",
)
NOT_REMEDIABLE = {
    DriftKind.UNREGISTERED_USERS: (
        "no Graph change registers a user's methods: the policy asks them to register at their next "
        "sign-in; make sure they do soon"
    ),
}
PILOT_SD_REFUSAL = (
    "security defaults are on again: a pilot run cannot turn them off (users outside the pilot would be "
    "left without MFA). Run a full migration, or decide by hand."
)


class NotCheckable(Exception):
    """The tenant cannot be checked now (not migrated, or a run of it is in progress). Nothing recorded."""


class _ReadFailed(Exception):
    """The check could not read the tenant; the message says why (recorded on the check)."""


# --- what the check compares ---------------------------------------------------------------------


@dataclass
class Baseline:
    """The migration a tenant is compared with: its run item and the policy as that run verified it."""

    item: RunItem
    policy: dict[str, Any]
    first: RunItem  # the migration re-runs continued: users its snapshot lacks were added since

    @classmethod
    def of(cls, item: RunItem) -> Baseline:
        return cls(item=item, policy=baseline_policy(item), first=first_migration_item(item.tenant) or item)

    @property
    def mode(self) -> str:
        return self.item.run.mode

    @property
    def policy_id(self) -> str:
        return str(self.item.state.get("policy_id") or "")

    @property
    def break_glass_ids(self) -> set[str]:
        return set(self.item.state.get("break_glass_ids") or [])

    @property
    def session_policy(self) -> dict[str, Any] | None:
        """The sign-in frequency policy as the run verified it (runs with that option only)."""
        return self.item.state.get("session_policy_baseline")

    @property
    def named_location(self) -> dict[str, Any] | None:
        """The trusted named location as the run verified it (runs with that option only)."""
        return self.item.state.get("named_location_baseline")


@dataclass
class Reading:
    """What one check read from the tenant."""

    policy: dict[str, Any] | None = None
    session_policy: dict[str, Any] | None = None  # read only when the baseline has one
    named_location: dict[str, Any] | None = None  # read only when the baseline has one
    security_defaults: bool | None = None
    break_glass: dict[str, str] = field(default_factory=dict)  # resolved account id -> UPN
    break_glass_group: str | None = None
    pilot_members: set[str] | None = None  # pilot runs: the pilot group's current members
    pilot_group_gone: bool = False
    users: int = 0
    unreadable: int = 0
    per_user_on: list[dict[str, str]] = field(default_factory=list)
    per_user_on_count: int = 0
    disabled_accounts: set[str] = field(default_factory=set)
    unregistered: list[tuple[str, str]] = field(default_factory=list)  # (id, UPN), in scope
    registration_read: bool = False
    names: dict[str, str] = field(default_factory=dict)  # UPNs of users named in exclusion changes
    new_unregistered: list[str] = field(default_factory=list)


@dataclass
class Found:
    """One kind of drift a check found."""

    kind: str
    summary: str
    detail: dict[str, Any]
    count: int = 1


# --- checking one tenant -------------------------------------------------------------------------


def check_tenant(tenant: CustomerTenant, *, actor: str) -> DriftCheck:
    """Check one migrated tenant now: store the check, open/refresh/resolve findings, mail new ones.

    Raises NotCheckable (recording nothing) when the tenant is not migrated or a run of it is in
    progress. Graph trouble is not raised: the check is stored with status error and its reason.
    """
    item = migrated_item(tenant)
    if item is None:
        raise NotCheckable(
            f"{tenant.primary_domain} is not migrated (no verified pilot or full run that was not rolled "
            "back since): there is nothing to compare it with"
        )
    busy = RunItem.objects.filter(tenant=tenant, status__in=ACTIVE_ITEM_STATUSES).first()
    if busy is not None:
        raise NotCheckable(f"{tenant.primary_domain} has run {busy.run_id} in progress; check it afterwards")
    baseline = Baseline.of(item)
    check = DriftCheck.objects.create(
        tenant=tenant, actor=actor, started_at=timezone.now(), run_item=item, policy_id=baseline.policy_id
    )
    config = getattr(tenant, "break_glass", None)
    problems = break_glass_account_problems(config.accounts) if config else []
    if problems:  # a row written around the model's checks: which accounts to spare cannot be known
        return _failed(
            check,
            f"The break-glass configuration cannot be used ({describe_problems({'accounts': problems})}): "
            "correct it on the tenant's page",
        )
    accounts = list(config.accounts) if config else []
    group = str(config.group_id) if config and config.group_id else None
    try:
        graph_config = GraphConfig.from_settings()
        # A cached token could outlive a revoked consent by an hour: every check asks for a fresh one.
        forget_tokens(graph_config, str(tenant.tenant_id))
        seen = asyncio.run(_read(tenant, baseline, graph_config, accounts, group))
        seen.new_unregistered = _not_in_snapshot(seen.unregistered, baseline.first.state.get("snapshot_id"))
    except _ReadFailed as exc:
        return _failed(check, str(exc))
    except (TokenError, GraphError, GraphUnavailable) as exc:
        reason = graph_failure(exc).reason
        if isinstance(exc, GraphError) and exc.throttled:
            reason += " (throttled past every retry: the next check tries again)"
        return _failed(check, reason)
    except GraphConfigError as exc:
        return _failed(check, unusable(exc))
    except BaseException:
        # A bug, not a tenant problem: the check does not stay "running" for ever, and the job fails loudly.
        _failed(check, "The check stopped on an unexpected error (a bug): see the worker log")
        raise
    found, evaluated = findings_from(seen, baseline)
    _store(check, found, evaluated, users=seen.users)
    notify(tenant)
    return check


async def _read(
    tenant: CustomerTenant, baseline: Baseline, config: GraphConfig, accounts: list[str], group: str | None
) -> Reading:
    seen = Reading(break_glass_group=group)
    async with GraphClient(str(tenant.tenant_id), config, user_count=tenant.users_total) as graph:
        token = await graph.app_token()
        if wrong := token.wrong_tenant(tenant.tenant_id):
            raise _ReadFailed(wrong)
        if missing := missing_roles(token.roles, READ_ROLES):
            raise _ReadFailed(missing_roles_in_words(missing))
        if baseline.policy_id:
            seen.policy = await get_policy(graph, baseline.policy_id)
        # The optional steps' objects: one CA read each, only for runs that made them.
        if baseline.session_policy:
            seen.session_policy = await get_policy(graph, str(baseline.session_policy.get("id")))
        if baseline.named_location:
            seen.named_location = await get_location(graph, str(baseline.named_location.get("id")))
        found, _ = await resolve_break_glass(graph, accounts, group)
        seen.break_glass = {uid: u.get("userPrincipalName") or uid for uid, u in found.items()}
        # Break-glass accounts (the run's and the configured ones) keep their per-user state: never drift.
        skip = baseline.break_glass_ids | set(seen.break_glass)
        if baseline.mode == RunMode.PILOT:
            members = await group_members(graph, str(baseline.item.run.pilot_group_id))
            seen.pilot_group_gone = members is None
            seen.pilot_members = {m["id"] for m in members or []}
        wanted_names = _exclusion_user_ids(baseline.policy, seen.policy)

        async def users_sink(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                seen.users += 1
                uid = row["user_id"]
                if uid in wanted_names:
                    seen.names[uid] = row["upn"]
                if uid in skip:
                    continue
                if not row["account_enabled"]:
                    seen.disabled_accounts.add(uid)
                if seen.pilot_members is not None and uid not in seen.pilot_members:
                    continue
                state = row["per_user_state"]
                if state == "unreadable":
                    seen.unreadable += 1
                elif state in ("enabled", "enforced"):
                    seen.per_user_on_count += 1
                    if len(seen.per_user_on) < USERS_LISTED:
                        seen.per_user_on.append({"upn": row["upn"], "state": state})

        async def registration_sink(rows: list[dict[str, Any]]) -> None:
            seen.registration_read = True
            for row in rows:
                uid = row["user_id"]
                if row["mfa_registered"] is not False or uid in skip or uid in seen.disabled_accounts:
                    continue
                if seen.pilot_members is not None and uid not in seen.pilot_members:
                    continue
                seen.unregistered.append((uid, row["upn"]))

        census = await take_census(graph, sink=users_sink, registration_sink=registration_sink)
    if census.status in (CensusStatus.NO_CONSENT, CensusStatus.ERROR):
        raise _ReadFailed(census.message)
    if census.status == CensusStatus.FREE:
        raise _ReadFailed(
            "The tenant has Entra ID Free now: Conditional Access needs P1/P2, so the MFA policy no longer "
            "applies. Renew P1/P2."
        )
    if seen.unreadable:
        raise _ReadFailed(
            f"Could not read the per-user MFA state of {seen.unreadable} users (throttled or refused past "
            "every retry): the next check tries again"
        )
    seen.security_defaults = census.security_defaults
    return seen


def _exclusion_user_ids(baseline: dict[str, Any], current: dict[str, Any] | None) -> set[str]:
    """Users added to or removed from the policy's excluded users (named by UPN in a finding)."""
    if current is None:
        return set()
    return set(_users(baseline).get("excludeUsers") or []) ^ set(_users(current).get("excludeUsers") or [])


def _not_in_snapshot(candidates: list[tuple[str, str]], snapshot_id: int | None) -> list[str]:
    """UPNs of the candidates the run's snapshot did not hold (users created since), a query per chunk."""
    if snapshot_id is None:
        return []
    new: list[str] = []
    for start in range(0, len(candidates), 1000):
        chunk = candidates[start : start + 1000]
        known = set(
            UserSnapshot.objects.filter(snapshot_id=snapshot_id, user_id__in=[uid for uid, _ in chunk])
            .values_list("user_id", flat=True)
            .iterator()
        )
        new.extend(upn or uid for uid, upn in chunk if uid not in known)
    return sorted(new)


# --- what counts as drift ------------------------------------------------------------------------


def _conditions(policy: dict[str, Any]) -> dict[str, Any]:
    return policy.get("conditions") or {}


def _users(policy: dict[str, Any]) -> dict[str, Any]:
    return _conditions(policy).get("users") or {}


def _grant_view(grant: dict[str, Any] | None) -> dict[str, Any] | None:
    """A grant as compared: an authentication strength by its id (Graph returns the whole strength
    object, whose method list Microsoft may change without anyone touching the policy)."""
    if not isinstance(grant, dict):
        return grant
    view = {k: v for k, v in grant.items() if k != "authenticationStrength"}
    view["authenticationStrength"] = strength_id(grant)
    return view


INCLUDED = ("includeUsers", "includeGroups", "includeRoles", "includeGuestsOrExternalUsers")
EXCLUDED = ("excludeUsers", "excludeGroups", "excludeRoles", "excludeGuestsOrExternalUsers")
# Parts of the policy compared as a whole: a finding names the part that changed.
POLICY_PARTS = {
    "grant": lambda p: _grant_view(p.get("grantControls")),
    "users included": lambda p: {k: _users(p).get(k) for k in INCLUDED},
    "applications": lambda p: _conditions(p).get("applications"),
    "client apps": lambda p: _conditions(p).get("clientAppTypes"),
    "other conditions": lambda p: {
        k: v for k, v in _conditions(p).items() if k not in ("users", "applications", "clientAppTypes")
    },
}


def policy_changes(
    baseline: dict[str, Any],
    current: dict[str, Any],
    *,
    break_glass: set[str],
    names: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """What differs between the policy as the run verified it and now, by part. Exclusions: what was
    added and removed (a break-glass exclusion removed is its own kind of drift, not counted here)."""
    names = names or {}
    changes: dict[str, dict[str, Any]] = {}
    for part, read in POLICY_PARTS.items():
        was, now = normalized(read(baseline)), normalized(read(current))
        if was != now:
            changes[part] = {"was": was, "now": now}
    added: list[str] = []
    removed: list[str] = []
    for key in EXCLUDED:
        was, now = _users(baseline).get(key), _users(current).get(key)
        if isinstance(was, list | type(None)) and isinstance(now, list | type(None)):
            was_set, now_set = set(was or []), set(now or [])
            label = key.removeprefix("exclude").lower()
            added += [f"{label}: {names.get(x, x)}" for x in sorted(now_set - was_set)]
            removed += [f"{label}: {names.get(x, x)}" for x in sorted(was_set - now_set - break_glass)]
        elif normalized(was) != normalized(now):
            added.append(f"{key}: {normalized(now)}")
    if added or removed:
        changes["exclusions"] = {"added": added, "removed": removed}
    return changes


def break_glass_gaps(policy: dict[str, Any], accounts: dict[str, str], group: str | None) -> dict[str, Any]:
    """Break-glass accounts (id -> UPN) not in the policy's excluded users, and the break-glass group if
    it is not in its excluded groups: the pipeline excludes both, and so must the policy still."""
    users = _users(policy)
    excluded = set(users.get("excludeUsers") or [])
    missing = sorted(upn for uid, upn in accounts.items() if uid not in excluded)
    group_missing = bool(group) and group not in set(users.get("excludeGroups") or [])
    if not missing and not group_missing:
        return {}
    return {"accounts": missing, "group": group if group_missing else None}


def optional_changes(baseline: Baseline, seen: Reading) -> dict[str, dict[str, Any]]:
    """What changed in the sign-in frequency policy and the trusted named location the run verified
    (named by field: a finding says which)."""
    changes: dict[str, dict[str, Any]] = {}
    was = baseline.session_policy
    if was:
        now = seen.session_policy
        if now is None:
            changes["sign-in frequency policy"] = {"was": was.get("displayName"), "now": "deleted"}
        else:
            if now.get("state") != was.get("state"):
                changes["sign-in frequency policy state"] = {"was": was.get("state"), "now": now.get("state")}
            before, after = frequency_of(was), frequency_of(now)
            if normalized(before) != normalized(after):
                changes["sign-in frequency"] = {
                    "was": f"{before['value']} {before['type']}" if before["isEnabled"] else "off",
                    "now": f"{after['value']} {after['type']}" if after["isEnabled"] else "off",
                }
    was = baseline.named_location
    if was:
        now = seen.named_location
        if now is None:
            changes["named location"] = {"was": was.get("displayName"), "now": "deleted"}
        else:
            if now.get("isTrusted") != was.get("isTrusted"):
                changes["named location trust"] = {"was": was.get("isTrusted"), "now": now.get("isTrusted")}
            before = {canonical(c) for c in ranges_of(was)}
            after = {canonical(c) for c in ranges_of(now)}
            if before != after:
                changes["named location ranges"] = {
                    "added": sorted(after - before),
                    "removed": sorted(before - after),
                }
    return changes


def findings_from(seen: Reading, baseline: Baseline) -> tuple[dict[str, Found], set[str]]:
    """(the drift found by kind, the kinds this reading could judge). A kind not judged (its data could
    not be read) keeps its open finding as it is."""
    found: dict[str, Found] = {}
    judged: set[str] = set()
    run_label = f"run {baseline.item.run_id}"
    scope = "in the pilot group" if baseline.mode == RunMode.PILOT else ""

    if not seen.pilot_group_gone:
        judged.add(DriftKind.PER_USER_MFA)
        if seen.per_user_on_count:
            n = seen.per_user_on_count
            found[DriftKind.PER_USER_MFA] = Found(
                DriftKind.PER_USER_MFA,
                f"Per-user MFA is on again for {n} user{'s' if n != 1 else ''} {scope}".rstrip()
                + ": "
                + _listing([u["upn"] for u in seen.per_user_on], n),
                {"count": n, "users": seen.per_user_on, "more": max(0, n - len(seen.per_user_on))},
                count=n,
            )

    if seen.security_defaults is not None:
        judged.add(DriftKind.SECURITY_DEFAULTS)
        if seen.security_defaults:
            found[DriftKind.SECURITY_DEFAULTS] = Found(
                DriftKind.SECURITY_DEFAULTS,
                f"Security defaults are on again ({run_label} turned them off or found them off)",
                {"isEnabled": True},
            )

    judged |= {
        DriftKind.POLICY_DELETED,
        DriftKind.POLICY_DISABLED,
        DriftKind.POLICY_CHANGED,
        DriftKind.BREAK_GLASS_EXCLUSION,
    }
    name = baseline.policy.get("displayName") or baseline.policy_id
    policy = seen.policy
    changes: dict[str, dict[str, Any]] = {}
    if policy is None:
        found[DriftKind.POLICY_DELETED] = Found(
            DriftKind.POLICY_DELETED,
            f"The MFA policy '{name}' ({baseline.policy_id}) that {run_label} enforced no longer exists",
            {"policy_id": baseline.policy_id, "displayName": name},
        )
    else:
        name = policy.get("displayName") or name
        if policy.get("state") != "enabled":
            found[DriftKind.POLICY_DISABLED] = Found(
                DriftKind.POLICY_DISABLED,
                f"The MFA policy '{name}' is {policy.get('state')}, not enforced",
                {"policy_id": baseline.policy_id, "state": policy.get("state"), "was": "enabled"},
            )
        changes = policy_changes(
            baseline.policy,
            policy,
            break_glass=baseline.break_glass_ids | set(seen.break_glass),
            names=seen.names,
        )
        if seen.pilot_group_gone:
            changes["pilot group"] = {"was": str(baseline.item.run.pilot_group_id), "now": "deleted"}
    # The sign-in frequency policy and the named location (optional steps) share this kind of finding.
    optional = optional_changes(baseline, seen)
    if changes or optional:
        what = []
        if changes:
            what.append(
                f"The MFA policy '{name}' changed since {run_label} verified it: {', '.join(changes)}"
            )
        if optional:
            what.append(
                f"{'the' if changes else 'The'} sign-in frequency policy or trusted named location "
                f"{run_label} set up changed: {', '.join(optional)}"
            )
        found[DriftKind.POLICY_CHANGED] = Found(
            DriftKind.POLICY_CHANGED,
            "; ".join(what),
            {
                "policy_id": baseline.policy_id,
                "fields": list(changes) + list(optional),
                "changes": {**changes, **optional},
            },
        )
    if policy is not None:
        gaps = break_glass_gaps(policy, seen.break_glass, seen.break_glass_group)
        if gaps:
            what = gaps["accounts"] + ([f"group {gaps['group']}"] if gaps["group"] else [])
            found[DriftKind.BREAK_GLASS_EXCLUSION] = Found(
                DriftKind.BREAK_GLASS_EXCLUSION,
                f"Not excluded from the MFA policy '{name}' any more: break-glass {', '.join(what)}",
                {"policy_id": baseline.policy_id, **gaps},
                count=len(what),
            )

    if seen.registration_read and not seen.pilot_group_gone:
        judged.add(DriftKind.UNREGISTERED_USERS)
        if seen.new_unregistered:
            n = len(seen.new_unregistered)
            found[DriftKind.UNREGISTERED_USERS] = Found(
                DriftKind.UNREGISTERED_USERS,
                f"{n} user{'s' if n != 1 else ''} added since run {baseline.first.run_id} "
                f"{'are' if n != 1 else 'is'} not "
                f"MFA-registered: {_listing(seen.new_unregistered, n)}. No Graph change fixes this: "
                "they are asked to register at their next sign-in.",
                {
                    "count": n,
                    "users": seen.new_unregistered[:USERS_LISTED],
                    "more": max(0, n - USERS_LISTED),
                    "remediation": NOT_REMEDIABLE[DriftKind.UNREGISTERED_USERS],
                },
                count=n,
            )
    return found, judged


def _listing(upns: list[str], total: int, shown: int = 5) -> str:
    text = ", ".join(upns[:shown])
    return text + (f" and {total - shown} more" if total > shown else "")


# --- storing -------------------------------------------------------------------------------------


def _failed(check: DriftCheck, reason: str) -> DriftCheck:
    """Record a check that could not read the tenant; its findings stay as they were."""
    check.status = DriftCheckStatus.ERROR
    check.error = reason[:4000]
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "error", "finished_at"])
    record_staff_action(
        actor=check.actor,
        action="drift.checked",
        tenant_id=check.tenant_id,
        detail={"check": check.pk, "status": check.status, "error": check.error[:500]},
    )
    logger.warning("drift check of %s failed: %s", check.tenant_id, check.error)
    return check


def _store(check: DriftCheck, found: dict[str, Found], judged: set[str], *, users: int) -> None:
    now = timezone.now()
    with transaction.atomic():
        # One check of a tenant stores at a time (the one-open-finding-per-kind constraint backs it).
        CustomerTenant.objects.select_for_update().filter(pk=check.tenant_id).first()
        mine = DriftFinding.objects.filter(tenant_id=check.tenant_id)
        open_findings = {f.kind: f for f in mine.filter(resolved_at__isnull=True)}
        resolved = []
        for kind, drift in found.items():
            finding = open_findings.get(kind)
            if finding is None:
                DriftFinding.objects.create(
                    tenant_id=check.tenant_id,
                    kind=kind,
                    summary=drift.summary[:500],
                    detail=drift.detail,
                    first_seen_at=now,
                    last_seen_at=now,
                    first_check=check,
                )
            else:
                finding.summary, finding.detail, finding.last_seen_at = drift.summary[:500], drift.detail, now
                finding.save(update_fields=["summary", "detail", "last_seen_at"])
        for kind, finding in open_findings.items():
            if kind not in found and kind in judged:
                finding.resolved_at = now
                finding.save(update_fields=["resolved_at"])
                resolved.append(kind)
        still_open = mine.filter(resolved_at__isnull=True).exists()
        CustomerTenant.objects.filter(pk=check.tenant_id).update(drift_detected=still_open)
        refresh_quietly(check.tenant_id)  # migrated, or migrated with drift
        check.status = DriftCheckStatus.DRIFT if found else DriftCheckStatus.CLEAN
        check.finished_at = timezone.now()
        check.users_checked = users
        check.save(update_fields=["status", "finished_at", "users_checked"])
    record_staff_action(
        actor=check.actor,
        action="drift.checked",
        tenant_id=check.tenant_id,
        detail={
            "check": check.pk,
            "status": check.status,
            "found": {kind: drift.count for kind, drift in sorted(found.items())},
            "resolved": sorted(resolved),
            "users_checked": users,
            "compared_with_run": check.run_item.run_id if check.run_item else None,
        },
    )


# --- e-mail --------------------------------------------------------------------------------------


def notify(tenant: CustomerTenant) -> int:
    """Mail the tenant's open findings nobody was told about yet (one mail per check), to DRIFT_EMAIL_TO.

    One mail per check rather than a digest per watch run: checks run as separate jobs on any number of
    workers, and a mail per tenant can be sent the moment its check ends (no job waits for the others).
    A finding is mailed once: it is claimed (notified_at set) before sending, and released if the mail
    fails, so the next check tries again. Mail trouble is logged and never fails the check.
    Returns how many findings the mail carried.
    """
    recipients = [r for r in settings.DRIFT_EMAIL_TO if r]
    if not recipients:
        return 0
    now = timezone.now()
    pending = list(
        DriftFinding.objects.filter(
            tenant=tenant, resolved_at__isnull=True, notified_at__isnull=True
        ).order_by("kind")
    )
    ids = [f.pk for f in pending]
    claimed = DriftFinding.objects.filter(pk__in=ids, notified_at__isnull=True).update(notified_at=now)
    if not claimed:
        return 0
    subject, body = drift_mail(tenant, pending)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception as exc:  # any backend error: logged, the findings stay un-notified for the next check
        DriftFinding.objects.filter(pk__in=ids, notified_at=now).update(notified_at=None)
        logger.warning("drift mail about %s not sent: %s: %s", tenant.primary_domain, type(exc).__name__, exc)
        return 0
    return len(ids)


def drift_mail(tenant: CustomerTenant, findings: list[DriftFinding]) -> tuple[str, str]:
    """Subject and plain-text body of a drift mail (names, users and policy fields; never a secret)."""
    kinds = ", ".join(f.get_kind_display() for f in findings)
    subject = f"Drift on {tenant.display_name} ({tenant.primary_domain}): {kinds}"
    site = settings.SITE_URL.rstrip("/")
    lines = [
        f"The drift watch found changes on {tenant.display_name} ({tenant.primary_domain}) since its "
        "migration was verified.",
        "",
    ]
    for finding in findings:
        seen = f"{finding.first_seen_at:%Y-%m-%d %H:%M} UTC"
        lines.append(f"* {finding.get_kind_display()} (first seen {seen})")
        lines.append(f"  {finding.summary}")
        users = finding.detail.get("users") or []
        if users:
            names = [u["upn"] if isinstance(u, dict) else u for u in users[:USERS_MAILED]]
            more = int(finding.detail.get("count", len(users))) - len(names)
            lines.append("  Users: " + ", ".join(names) + (f" and {more} more" if more > 0 else ""))
        if finding.kind in NOT_REMEDIABLE:
            lines.append(f"  Remediation: none by the console ({NOT_REMEDIABLE[finding.kind]}).")
        lines.append("")
    tenant_url = site + reverse("admin:tenants_customertenant_change", args=[tenant.pk])
    findings_url = site + reverse("admin:migrations_engine_driftfinding_changelist")
    lines += [
        f"Tenant: {tenant_url}",
        f"Findings (remediate from here): {findings_url}?tenant__id__exact={tenant.pk}&status=open",
    ]
    return subject, "\n".join(lines) + "\n"


# --- remediation ---------------------------------------------------------------------------------


@dataclass
class Remediation:
    """What a remediation of one tenant's findings would do: a run of the migration's scope."""

    tenant: CustomerTenant
    item: RunItem | None
    repair: list[DriftFinding] = field(default_factory=list)
    left: list[tuple[DriftFinding, str]] = field(default_factory=list)  # (finding, why no run repairs it)
    refused: str = ""

    @property
    def mode(self) -> str:
        return self.item.run.mode if self.item else ""

    @property
    def pilot_group_id(self) -> str | None:
        return str(self.item.run.pilot_group_id) if self.item and self.mode == RunMode.PILOT else None


def plan_remediation(findings: Iterable[DriftFinding]) -> list[Remediation]:
    """Per tenant: which of the findings a run of its migration's scope repairs, and which it cannot."""
    by_tenant: dict[int, list[DriftFinding]] = {}
    tenants: dict[int, CustomerTenant] = {}
    for finding in findings:
        by_tenant.setdefault(finding.tenant_id, []).append(finding)
        tenants[finding.tenant_id] = finding.tenant
    plans = []
    for tenant_id, items in by_tenant.items():
        tenant = tenants[tenant_id]
        plan = Remediation(tenant=tenant, item=migrated_item(tenant))
        pilot = plan.mode == RunMode.PILOT
        for finding in items:
            if finding.resolved_at is not None:
                plan.left.append((finding, "already resolved"))
            elif finding.kind in NOT_REMEDIABLE:
                plan.left.append((finding, NOT_REMEDIABLE[finding.kind]))
            elif pilot and finding.kind == DriftKind.SECURITY_DEFAULTS:
                plan.left.append((finding, PILOT_SD_REFUSAL))
            else:
                plan.repair.append(finding)
        if plan.item is None:
            plan.refused = (
                f"{tenant.primary_domain} is not migrated any more (rolled back, or a later run did not "
                "finish): start a run from the fleet page instead"
            )
        elif (
            pilot
            and DriftFinding.objects.filter(
                tenant=tenant, kind=DriftKind.SECURITY_DEFAULTS, resolved_at__isnull=True
            ).exists()
        ):
            plan.refused = f"{tenant.primary_domain}: {PILOT_SD_REFUSAL}"
        elif not plan.repair:
            plan.refused = f"{tenant.primary_domain}: nothing here that a run can repair"
        plans.append(plan)
    return plans


def start_remediation(plan: Remediation, *, actor: Actor) -> MigrationRun:
    """Start the run that repairs `plan.repair`: a normal audited run of the migration's scope (full, or
    pilot with the same group) and options. Raises ValidationError when it is refused, and whatever
    `start_run` raises (RunConflict when the tenant is busy)."""
    if plan.refused:
        raise ValidationError(plan.refused)
    options = {k: v for k, v in plan.item.run.options.items() if k in DEFAULT_OPTIONS}
    run = start_run(
        mode=plan.mode,
        tenants=[plan.tenant],
        actor=actor,
        pilot_group_id=plan.pilot_group_id,
        options=options,
        remediation=True,  # the open drift is what this run repairs: it does not block it
    )
    DriftFinding.objects.filter(pk__in=[f.pk for f in plan.repair]).update(remediation_run=run)
    record_staff_action(
        actor=actor_label(actor),
        action="drift.remediation_started",
        tenant_id=plan.tenant.pk,
        run_id=run.pk,
        detail={
            "mode": plan.mode,
            "findings": [f.pk for f in plan.repair],
            "kinds": sorted({f.kind for f in plan.repair}),
            "not_remediated": [f.kind for f, _ in plan.left],
        },
    )
    return run


# --- scheduling ----------------------------------------------------------------------------------


def interval_seconds(hours: float | None = None) -> int:
    """The watch's period in seconds (DRIFT_WATCH_INTERVAL_HOURS unless given)."""
    hours = settings.DRIFT_WATCH_INTERVAL_HOURS if hours is None else hours
    if not hours or hours <= 0:
        raise ImproperlyConfigured(f"DRIFT_WATCH_INTERVAL_HOURS must be more than 0, not {hours!r}")
    return max(60, round(float(hours) * 3600))


def enqueue_drift_check(tenant_pk: int, *, actor: str):
    """Queue a drift check of one tenant unless one is queued or running: (the job, whether queued now)."""
    return queueing.enqueue_once(
        queueing.drift_check_job_id(tenant_pk),
        queueing.DRIFT_CHECK_TASK,
        tenant_pk,
        actor,
        job_timeout=queueing.DRIFT_CHECK_JOB_TIMEOUT,
        result_ttl=7 * 86400,
        failure_ttl=30 * 86400,
    )
