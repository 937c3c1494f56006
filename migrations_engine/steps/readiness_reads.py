"""The readiness gate's Graph reads, started early (`Readiness.reads`): while the census reads every
user's per-user state against the tenant's resource units, these read the reports, which Graph limits
separately (5 requests per 10 s per app and tenant: the registration report, sign-in logs and directory
audits share that limit). So the report requests, the slowest reads before the first write, overlap the
census instead of following it.

Only Graph reads, no database: they run on the job's event loop while other steps work. What they find
is applied to the snapshot by the readiness step itself (readiness.py)."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from migrations_engine.graph import GraphClient, GraphError
from migrations_engine.graph.resources.audit_logs import microsoft_managed_ids, sign_in_pages
from migrations_engine.graph.resources.mfa_service import legacy_mfa_settings
from migrations_engine.graph.resources.registration_report import NOT_REGISTERED, RegistrationRead

# clientAppUsed values of sign-ins that cannot do modern authentication (they use a password, or an app
# password while per-user MFA is enforced): these users lose access when per-user MFA goes.
LEGACY_CLIENTS = (
    "Exchange ActiveSync",
    "IMAP4",
    "POP3",
    "Authenticated SMTP",
    "MAPI Over HTTP",
    "Exchange Web Services",
    "Other clients",
)
SIGN_IN_PAGES_PER_CLIENT = 2  # at most ~2,000 sign-ins read per legacy client: enough to name the users

NOT_READ = object()  # managed_ids when the directory audits were not asked (the tenant had no policies)


@dataclass
class ReadinessReads:
    """What the reports said. `registered`/`unregistered`: user ids the registration report lists as
    MFA-registered or not (None: the report was unreadable); `legacy`: {user id: {upn, clients}} of
    legacy-client sign-ins (None: the sign-in logs were unreadable, `sign_ins_unreadable` says why)."""

    registered: list[str] | None = field(default_factory=list)
    unregistered: list[str] | None = field(default_factory=list)
    legacy: dict[str, dict[str, Any]] | None = field(default_factory=dict)
    legacy_settings: dict[str, Any] | None = None
    managed_ids: Any = NOT_READ
    sign_ins_unreadable: str = ""
    notes: list[str] = field(default_factory=list)


async def read_reports(graph: GraphClient, since: str, *, with_audits: bool) -> ReadinessReads:
    """Every report the gate needs; `with_audits` also reads the directory audits that tell
    Microsoft-managed policies (only worth a report request when the tenant has policies)."""
    found = ReadinessReads()
    await _registration(graph, found)
    await _legacy_sign_ins(graph, since, found)
    found.legacy_settings = await legacy_mfa_settings(graph)
    if with_audits:
        found.managed_ids = await microsoft_managed_ids(graph)
    return found


async def _registration(graph: GraphClient, found: ReadinessReads) -> None:
    """Users the report lists as not MFA-registered. Graph is asked for those only (`isMfaRegistered eq
    false`); if it refuses the filter the whole report is read, which also names the registered."""
    read = RegistrationRead(graph, NOT_REGISTERED)
    try:
        async for page in read.pages():
            for row in page:
                flag = row.get("isMfaRegistered")
                if flag is True:
                    found.registered.append(row["id"])
                elif flag is False:
                    found.unregistered.append(row["id"])
    except GraphError as exc:
        if exc.status in (400, 403):
            found.notes.append(f"registration report unreadable ({exc.code})")
            found.registered = found.unregistered = None
            return
        raise
    if read.refused:
        found.notes.append(
            f"Graph refused the registration report's filter ({read.refused}): the whole report was read"
        )


async def _legacy_sign_ins(graph: GraphClient, since: str, found: ReadinessReads) -> None:
    """Users who signed in with a legacy client since `since`: one query per legacy client (see
    `audit_logs.sign_in_pages`), at most SIGN_IN_PAGES_PER_CLIENT pages each. A log that cannot be read
    leaves `legacy` None: legacy clients were not checked, which is never a pass."""
    users: dict[str, dict[str, Any]] = {}
    for client in LEGACY_CLIENTS:
        try:
            async with aclosing(sign_in_pages(graph, client, since)) as pages:
                await _read_client(pages, client, users, found)
        except GraphError as exc:
            if exc.status in (400, 403, 404):
                found.sign_ins_unreadable = f"sign-in logs unreadable ({exc.code})"
                found.notes.append(f"{found.sign_ins_unreadable}: legacy clients not checked")
                found.legacy = None
                return
            raise
    for entry in users.values():
        entry["clients"] = sorted(entry["clients"])
    found.legacy = users


async def _read_client(pages, client: str, users: dict[str, dict[str, Any]], found: ReadinessReads) -> None:
    for _ in range(SIGN_IN_PAGES_PER_CLIENT):
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            return
        for row in page:
            uid = row.get("userId")
            if uid:
                entry = users.setdefault(uid, {"upn": row.get("userPrincipalName") or uid, "clients": set()})
                entry["clients"].add(row.get("clientAppUsed") or client)
    read = SIGN_IN_PAGES_PER_CLIENT * 999
    found.notes.append(f"more than {read} {client} sign-ins: users named from the newest")
