"""The read-only census of one tenant: licence, security defaults, CA policies, per-user MFA, registration.

It only reads. It is the first use of the Graph client and becomes the pipeline's census step.
Users are streamed page by page and their per-user MFA states read in `$batch`es of 20, a few batches
in flight, so memory stays flat however large the tenant; the posture, the users and the registration
report are read at once (`_census_body`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from migrations_engine.graph import (
    ConsentMissing,
    GraphClient,
    GraphError,
    GraphUnavailable,
    TokenError,
    missing_roles,
)
from migrations_engine.graph.resources import licences, per_user_mfa, policies, security_defaults, users
from migrations_engine.graph.resources.audit_logs import microsoft_managed_ids
from migrations_engine.graph.resources.policy_kinds import best_policy_state, census_summary
from migrations_engine.graph.resources.registration_report import RegistrationRead
from tenants.choices import CensusStatus, LicenceTier, PolicyState

BATCHES_IN_FLIGHT = 4  # $batches of per-user reads in flight

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


async def take_census(
    client: GraphClient,
    progress: ProgressCallback | None = None,
    sink: UserSink | None = None,
    registration_sink: UserSink | None = None,
) -> CensusResult:
    """Read everything the census needs from one tenant. Never raises for expected tenant problems:
    missing consent, missing permissions and Free licences come back as a status and a message.

    `sink`, when given, is awaited with each page of per-user report rows (see `_user_row`), and
    `registration_sink` with each page of the registration report once the users are written
    (`user_id`, `upn`, `mfa_registered`, `methods`), so neither users nor registrations are ever all in
    memory."""
    result = CensusResult()
    try:
        token = await client.app_token()
    except ConsentMissing as exc:
        result.status = CensusStatus.NO_CONSENT
        result.missing_roles = missing_roles([])
        result.message = exc.in_words
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
    """Three reads at once, each against a limit of its own: the tenant's posture (licence, security
    defaults, policies), its users with their per-user states (resource units) and the registration
    report (5 report requests per 10 s, 100 rows a page: for most tenants the longest of the three)."""
    users_done = asyncio.Event()

    async def posture() -> None:
        if "Organization.Read.All" in have:
            skus = await licences.subscribed_skus(client)
            result.licence, result.licence_plans = licences.licence_from_skus(skus)
        if "Policy.Read.All" in have:
            result.security_defaults = await security_defaults.is_on(client)
            found: list[dict[str, Any]] = []
            if result.licence != LicenceTier.FREE:
                found = await policies.list_policies(client)
            result.ca_policy_count = len(found)
            result.mfa_policy_state = best_policy_state(found)
            managed = await microsoft_managed_ids(client) if found and "AuditLog.Read.All" in have else None
            result.policies = [census_summary(p, managed) for p in found]

    async def people() -> None:
        try:
            if "User.Read.All" in have:
                await _count_users(
                    client, result, read_states="Policy.Read.All" in have, progress=progress, sink=sink
                )
        finally:
            users_done.set()

    async def registrations() -> None:
        if "AuditLog.Read.All" in have:
            await _count_registration(client, result, registration_sink, users_done)

    await _all(posture(), people(), registrations())


async def _all(*coros: Awaitable[None]) -> None:
    """Run them together; the first error cancels the others and is raised as it was."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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
    async for page in users.user_pages(client):
        total += len(page)
        client.saw_users(total)
        page_states: dict[str, str] = {}
        if read_states:
            read = await per_user_mfa.read_states(
                client, [u["id"] for u in page], in_flight=BATCHES_IN_FLIGHT, progress=progress
            )
            for user_id, state in read.items():
                if state is None:
                    state = "unreadable"
                elif state not in per_user_mfa.PER_USER_STATES:
                    state = "unknown"
                states[state] += 1
                page_states[user_id] = state
        elif progress:
            progress(len(page))
        if sink is not None:
            await sink([_user_row(u, page_states.get(u["id"], "")) for u in page])
    result.users_total = total
    if read_states:
        result.per_user = {state: states.get(state, 0) for state in per_user_mfa.PER_USER_STATES}
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


async def _count_registration(
    client: GraphClient, result: CensusResult, sink: UserSink | None, users_done: asyncio.Event
) -> None:
    """Count registrations on `result` and hand each page of them to `sink`, which fills them in on the
    users' rows: pages that arrive before every user is written wait (a few hundred rows: the report
    yields at most ~50 rows a second) and go in once the users are."""
    registered = known = 0
    waiting: list[dict[str, Any]] = []
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
            if sink is None:
                continue
            waiting.extend(rows)
            if users_done.is_set():
                await sink(waiting)
                waiting = []
    except GraphError as exc:
        if exc.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant":
            result.notes.append("Registration report needs Entra ID P1/P2")
            return
        raise
    await users_done.wait()
    if sink is not None and waiting:
        await sink(waiting)
    result.mfa_registered = registered
    result.registration_known = known
