"""The read-only census of one tenant: licence, security defaults, CA policies, per-user MFA, registration.

It only reads. It is the first use of the Graph client and becomes the pipeline's census step.
Users are streamed page by page and their per-user MFA states read in `$batch`es of 20, a few batches
in flight, so memory stays flat however large the tenant.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from migrations_engine.census.registration_report import RegistrationRead
from migrations_engine.graph import (
    BatchItem,
    ConsentMissing,
    GraphClient,
    GraphError,
    GraphUnavailable,
    TokenError,
    missing_roles,
)
from tenants.choices import CensusStatus, LicenceTier, PolicyState

AAD_PREMIUM_P1 = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
AAD_PREMIUM_P2 = "eec0eb4f-6444-4f95-aba0-50c24d67f998"
PER_USER_STATES = ("disabled", "enabled", "enforced")
BATCHES_IN_FLIGHT = 4
USER_SELECT = "id,userPrincipalName,displayName,accountEnabled,userType"

ProgressCallback = Callable[[int], None]
UserSink = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass
class CensusResult:
    """What a census found. Fields left None were not readable (permission missing or Free tenant)."""

    status: str = CensusStatus.OK
    message: str = ""
    roles: list[str] = field(default_factory=list)
    missing_roles: list[str] = field(default_factory=list)
    licence: str = LicenceTier.UNKNOWN
    licence_plans: list[str] = field(default_factory=list)
    security_defaults: bool | None = None
    ca_policy_count: int | None = None
    mfa_policy_state: str = PolicyState.NONE
    policies: list[dict[str, Any]] = field(default_factory=list)
    users_total: int | None = None
    per_user: dict[str, int] | None = None
    mfa_registered: int | None = None
    registration_known: int | None = None
    notes: list[str] = field(default_factory=list)


def licence_from_skus(skus: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The best Entra ID tier among active SKUs, judged by service plans (P1 often hides in bundles)."""
    plans: set[str] = set()
    for sku in skus:
        if sku.get("capabilityStatus") not in ("Enabled", "Warning"):
            continue
        if int((sku.get("prepaidUnits") or {}).get("enabled") or 0) <= 0:
            continue
        for plan in sku.get("servicePlans") or []:
            plan_id = str(plan.get("servicePlanId", "")).lower()
            if plan_id == AAD_PREMIUM_P2:
                plans.add("AAD_PREMIUM_P2")
            elif plan_id == AAD_PREMIUM_P1:
                plans.add("AAD_PREMIUM")
    if "AAD_PREMIUM_P2" in plans:
        return LicenceTier.P2, sorted(plans)
    if "AAD_PREMIUM" in plans:
        return LicenceTier.P1, sorted(plans)
    return LicenceTier.FREE, []


def requires_mfa_for_all(policy: dict[str, Any]) -> bool:
    """True for a policy that requires MFA of all users for all apps (exclusions allowed)."""
    conditions = policy.get("conditions") or {}
    users = conditions.get("users") or {}
    apps = conditions.get("applications") or {}
    grant = policy.get("grantControls") or {}
    asks_mfa = "mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength"))
    return (
        asks_mfa
        and "All" in (users.get("includeUsers") or [])
        and "All" in (apps.get("includeApplications") or [])
    )


# Microsoft-managed policies carry no marker property in Graph. The documented way to find them is the
# directory audit log: Microsoft's "Microsoft Managed Policy Manager" app creates them. The audit log keeps
# 30 days, so older ones are recognised by name too (Microsoft-managed policies cannot be renamed); only
# Microsoft's long, specific names are listed, not ones an admin would also choose.
MANAGED_POLICY_MANAGER = "Microsoft Managed Policy Manager"
MICROSOFT_MANAGED_NAMES = frozenset(
    {
        "Multifactor authentication for admins accessing Microsoft Admin Portals",
        "Multifactor authentication for per-user multifactor authentication users",
        "Multifactor authentication and reauthentication for risky sign-ins",
        # the names these policies were first announced under
        "Require multifactor authentication for admin portals",
        "Require multifactor authentication for per-user multifactor authentication users",
        "Require multifactor authentication for high-risk sign-ins",
    }
)


async def microsoft_managed_ids(client: GraphClient) -> set[str] | None:
    """Ids of the policies Microsoft's policy manager created (from the directory audit log); None when
    the log cannot be read (a permission missing)."""
    ids: set[str] = set()
    query = {"$filter": f"initiatedBy/app/displayName eq '{MANAGED_POLICY_MANAGER}' and category eq 'Policy'"}
    try:
        async for page in client.iter_pages("/auditLogs/directoryAudits", query=query):
            for entry in page:
                ids.update(t["id"] for t in entry.get("targetResources") or [] if t.get("id"))
    except GraphError as exc:
        if exc.status in (400, 403, 404):
            return None
        raise
    return ids


def microsoft_managed(policy: dict[str, Any], managed_ids: set[str] | None = None) -> bool:
    """True for a policy Microsoft created and manages (see MICROSOFT_MANAGED_NAMES)."""
    return policy.get("id") in (managed_ids or ()) or policy.get("displayName") in MICROSOFT_MANAGED_NAMES


def best_policy_state(policies: list[dict[str, Any]]) -> str:
    """The strongest state among MFA-for-all policies: enabled > report-only > disabled > none."""
    order = [PolicyState.ENABLED, PolicyState.REPORT_ONLY, PolicyState.DISABLED]
    states = {p.get("state") for p in policies if requires_mfa_for_all(p)}
    for state in order:
        if state.value in states:
            return state
    return PolicyState.NONE


def _policy_summary(policy: dict[str, Any], managed_ids: set[str] | None = None) -> dict[str, Any]:
    return {
        "id": policy.get("id"),
        "displayName": policy.get("displayName"),
        "state": policy.get("state"),
        "templateId": policy.get("templateId"),
        "requiresMfaForAll": requires_mfa_for_all(policy),
        "microsoftManaged": microsoft_managed(policy, managed_ids),
    }


async def take_census(
    client: GraphClient,
    progress: ProgressCallback | None = None,
    sink: UserSink | None = None,
    registration_sink: UserSink | None = None,
) -> CensusResult:
    """Read everything the census needs from one tenant. Never raises for expected tenant problems:
    missing consent, missing permissions and Free licences come back as a status and a message.

    `sink`, when given, is awaited with each page of per-user report rows (see `_user_row`), and
    `registration_sink` afterwards with each page of the registration report (`user_id`, `upn`,
    `mfa_registered`, `methods`), so neither users nor registrations are ever all in memory."""
    result = CensusResult()
    try:
        token = await client.app_token()
    except ConsentMissing as exc:
        result.status = CensusStatus.NO_CONSENT
        result.missing_roles = missing_roles([])
        result.message = f"Admin consent not granted (AADSTS{exc.aadsts or '?'}): missing every permission"
        return result
    except TokenError as exc:
        result.status = CensusStatus.ERROR
        result.message = str(exc)
        return result

    result.roles = sorted(token.roles)
    result.missing_roles = missing_roles(token.roles)
    have = set(token.roles)
    try:
        await _census_body(client, result, have, progress, sink, registration_sink)
    except (GraphError, GraphUnavailable) as exc:
        result.status = CensusStatus.ERROR
        result.message = str(exc)
        return result
    if result.missing_roles:
        result.status = CensusStatus.PARTIAL
        result.notes.insert(0, "Missing permissions: " + ", ".join(result.missing_roles))
    if result.licence == LicenceTier.FREE:
        result.status = CensusStatus.FREE
        result.notes.insert(0, "Conditional Access needs Entra ID P1 or P2: buy P1/P2 before migrating")
    result.message = "; ".join(result.notes) if result.notes else "Census complete"
    return result


async def _census_body(
    client: GraphClient,
    result: CensusResult,
    have: set[str],
    progress: ProgressCallback | None,
    sink: UserSink | None,
    registration_sink: UserSink | None,
) -> None:
    if "Organization.Read.All" in have:
        skus = await client.get_json("/subscribedSkus")
        result.licence, result.licence_plans = licence_from_skus(skus.get("value", []))

    if "Policy.Read.All" in have:
        sd = await client.get_json("/policies/identitySecurityDefaultsEnforcementPolicy")
        result.security_defaults = bool(sd.get("isEnabled"))
        policies: list[dict[str, Any]] = []
        if result.licence != LicenceTier.FREE:
            async for page in client.iter_pages("/identity/conditionalAccess/policies"):
                policies.extend(page)
        result.ca_policy_count = len(policies)
        result.mfa_policy_state = best_policy_state(policies)
        managed = await microsoft_managed_ids(client) if policies and "AuditLog.Read.All" in have else None
        result.policies = [_policy_summary(p, managed) for p in policies]

    if "User.Read.All" in have:
        await _count_users(
            client, result, read_states="Policy.Read.All" in have, progress=progress, sink=sink
        )
    if "AuditLog.Read.All" in have:
        await _count_registration(client, result, registration_sink)


async def _count_users(
    client: GraphClient,
    result: CensusResult,
    *,
    read_states: bool,
    progress: ProgressCallback | None,
    sink: UserSink | None,
) -> None:
    states: Counter[str] = Counter()
    total = 0
    in_flight = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    page_states: dict[str, str] = {}

    async def read_chunk(users: list[dict[str, Any]]) -> None:
        items = [
            BatchItem(id=str(i), method="GET", url=f"/users/{u['id']}/authentication/requirements")
            for i, u in enumerate(users)
        ]
        async with in_flight:
            answers = await client.batch_reads(items, version="beta")
        for item in items:
            answer = answers[item.id]
            user_id = users[int(item.id)]["id"]
            if answer.ok and isinstance(answer.body, dict):
                state = str(answer.body.get("perUserMfaState", ""))
                state = state if state in PER_USER_STATES else "unknown"
            else:
                state = "unreadable"
            states[state] += 1
            page_states[user_id] = state
        if progress:
            progress(len(users))

    query = {"$select": USER_SELECT, "$top": 999}
    async for page in client.iter_pages("/users", query=query):
        total += len(page)
        client.saw_users(total)
        page_states.clear()
        if read_states:
            await asyncio.gather(*(read_chunk(page[i : i + 20]) for i in range(0, len(page), 20)))
        elif progress:
            progress(len(page))
        if sink is not None:
            await sink([_user_row(u, page_states.get(u["id"], "")) for u in page])
    result.users_total = total
    if read_states:
        result.per_user = {state: states.get(state, 0) for state in PER_USER_STATES}
        for odd in ("unknown", "unreadable"):
            if states.get(odd):
                result.per_user[odd] = states[odd]
                result.notes.append(f"{states[odd]} users' per-user MFA state was {odd}")


def _user_row(user: dict[str, Any], state: str) -> dict[str, Any]:
    """One user of the census report (what the PowerShell MFA-status exports hold); registration is
    filled in from the registration report afterwards."""
    return {
        "user_id": user["id"],
        "upn": user.get("userPrincipalName") or "",
        "display_name": user.get("displayName") or "",
        "user_type": user.get("userType") or "",
        "account_enabled": bool(user.get("accountEnabled", True)),
        "per_user_state": state,
    }


async def _count_registration(client: GraphClient, result: CensusResult, sink: UserSink | None) -> None:
    """Count registrations on `result` and hand each page of them to `sink`."""
    registered = known = 0
    try:
        # Every row, so no filter; and no $select or $top, which the report does not document.
        async for page in RegistrationRead(client).pages():
            rows = [
                {
                    "user_id": row["id"],
                    "upn": row.get("userPrincipalName") or "",
                    "mfa_registered": row.get("isMfaRegistered"),
                    "methods": list(row.get("methodsRegistered") or []),
                }
                for row in page
            ]
            registered += sum(1 for r in rows if r["mfa_registered"])
            known += len(rows)
            if sink is not None:
                await sink(rows)
    except GraphError as exc:
        if exc.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant":
            result.notes.append("Registration report needs Entra ID P1/P2")
            return
        raise
    result.mfa_registered = registered
    result.registration_known = known
