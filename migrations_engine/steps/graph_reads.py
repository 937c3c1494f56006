"""Small Graph reads the steps share (policies, security defaults, users by name, group members)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from migrations_engine.graph import GraphClient, GraphError
from migrations_engine.graph.paths import user_path

POLICIES = "/identity/conditionalAccess/policies"
SECURITY_DEFAULTS = "/policies/identitySecurityDefaultsEnforcementPolicy"


async def security_defaults_on(graph: GraphClient) -> bool:
    return bool((await graph.get_json(SECURITY_DEFAULTS)).get("isEnabled"))


async def list_all(graph: GraphClient, path: str) -> list[dict[str, Any]]:
    """Every object of a collection, page after page."""
    found: list[dict[str, Any]] = []
    async for page in graph.iter_pages(path):
        found.extend(page)
    return found


async def get_after_create(
    graph: GraphClient, path: str, *, wait_seconds: float = 0
) -> dict[str, Any] | None:
    """An object by path; right after a create Graph may answer 404 for a while (replication lag), so a
    404 is retried with backoff for up to `wait_seconds` before it counts as gone (None)."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return await graph.get_json(path)
        except GraphError as exc:
            if exc.status != 404:
                raise
            if time.monotonic() >= deadline:
                return None
        await asyncio.sleep(min(delay, max(0.05, deadline - time.monotonic())))
        delay = min(delay * 2, 10)


async def list_policies(graph: GraphClient) -> list[dict[str, Any]]:
    return await list_all(graph, POLICIES)


async def get_policy(graph: GraphClient, policy_id: str, *, wait_seconds: float = 0) -> dict[str, Any] | None:
    """A policy by id (see `get_after_create`)."""
    return await get_after_create(graph, f"{POLICIES}/{quote(policy_id)}", wait_seconds=wait_seconds)


async def resolve_user(graph: GraphClient, name: str) -> dict[str, Any] | None:
    """A user by object id or UPN (None when it does not exist)."""
    try:
        return await graph.get_json(user_path(name), query={"$select": "id,userPrincipalName,accountEnabled"})
    except GraphError as exc:
        if exc.status == 404:
            return None
        raise


async def group_members(graph: GraphClient, group_id: str) -> list[dict[str, Any]] | None:
    """A group's direct user members (None when the group does not exist)."""
    members: list[dict[str, Any]] = []
    try:
        async for page in graph.iter_pages(
            f"/groups/{quote(group_id)}/members",
            query={"$select": "id,userPrincipalName,accountEnabled", "$top": 999},
        ):
            members.extend(m for m in page if m.get("@odata.type", "#microsoft.graph.user").endswith(".user"))
    except GraphError as exc:
        if exc.status == 404:
            return None
        raise
    return members


async def resolve_break_glass(
    graph: GraphClient, accounts: list[str], group_id: str | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The configured break-glass accounts (UPNs or ids) and the break-glass group's members that exist,
    by object id, and the configured entries that do not (the guard step and the drift watch share it)."""
    found: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for name in accounts:
        user = await resolve_user(graph, name)
        if user is None:
            missing.append(name)
        else:
            found[user["id"]] = user
    if group_id:
        members = await group_members(graph, group_id)
        if members is None:
            missing.append(f"group {group_id}")
        else:
            found.update({m["id"]: m for m in members})
    return found, missing


async def legacy_mfa_settings(graph: GraphClient) -> dict[str, Any] | None:
    """The legacy MFA service settings (`/beta/policies/mfaServicePolicy`: trusted IPs, remember-MFA days,
    app passwords). Microsoft does not document this endpoint: None when Graph does not serve it (an
    unknown segment, 400/404) or refuses it (403), or when the answer is not an object."""
    try:
        body = await graph.get_json("/policies/mfaServicePolicy", version="beta")
    except GraphError as exc:
        if exc.status in (400, 403, 404):
            return None
        raise
    return body if isinstance(body, dict) else None
