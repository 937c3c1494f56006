"""Users and groups: paths built from keys the console does not choose (user principal names, ids), the
user listing the census streams, and the break-glass lookup the guard step and the drift watch share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from migrations_engine.graph.client import GraphClient
from migrations_engine.graph.errors import GraphError
from migrations_engine.graph.paging import read_ahead

USERS = "/users"
USER_SELECT = "id,userPrincipalName,displayName,accountEnabled,userType"
MEMBER_SELECT = "id,userPrincipalName,accountEnabled"
PAGE_SIZE = 999  # the largest $top /users and /members accept


def user_path(key: str) -> str:
    """`/users/{id | userPrincipalName}` as Get user documents it
    (https://learn.microsoft.com/graph/api/user-get, HTTP request tip): the '#' of a B2B guest's `#EXT#`
    encoded as %23, and a UPN that starts with '$' in the key form `/users('$x@y.com')` (with a slash,
    Graph answers 400: only system query options start with '$'), an apostrophe doubled inside it."""
    if key.startswith("$"):
        return "/users('" + quote(key.replace("'", "''"), safe="@$") + "')"
    return "/users/" + quote(key, safe="@")


def user_pages(graph: GraphClient, select: str = USER_SELECT) -> AsyncIterator[list[dict[str, Any]]]:
    """Every user of the tenant, a page (up to 999) at a time, the next page read while the caller works
    on this one (paging.read_ahead)."""
    return read_ahead(graph.iter_pages(USERS, query={"$select": select, "$top": PAGE_SIZE}))


async def resolve_user(graph: GraphClient, name: str) -> dict[str, Any] | None:
    """A user by object id or UPN (None when it does not exist)."""
    try:
        return await graph.get_json(user_path(name), query={"$select": MEMBER_SELECT})
    except GraphError as exc:
        if exc.status == 404:
            return None
        raise


async def group_members(graph: GraphClient, group_id: str) -> list[dict[str, Any]] | None:
    """A group's direct user members (None when the group does not exist)."""
    members: list[dict[str, Any]] = []
    try:
        async for page in graph.iter_pages(
            f"/groups/{quote(group_id)}/members", query={"$select": MEMBER_SELECT, "$top": PAGE_SIZE}
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
