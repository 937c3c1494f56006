"""Per-user MFA (`/beta/users/{id}/authentication/requirements`, strongAuthenticationRequirements): the
states, reading them 20 to a `$batch`, and the PATCH item that sets one.

https://learn.microsoft.com/graph/api/resources/strongauthenticationrequirements
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from migrations_engine.graph.client import BatchItem, GraphClient

PER_USER_STATES = ("disabled", "enabled", "enforced")
BATCH = 20  # requests per `$batch`, Graph's documented maximum
READS_IN_FLIGHT = 8  # reads are paced by resource units, which allow ~40 batches/s in a large tenant
VERSION = "beta"  # the resource exists on beta only
SET_ACTION = "per_user_mfa.set"  # the audit action of every per-user write
_PREFIX, _SUFFIX = "/users/", "/authentication/requirements"


def requirements_path(user_id: str) -> str:
    return f"{_PREFIX}{user_id}{_SUFFIX}"


def user_id_in(path: str) -> str:
    """The user id of a requirements path (as an audit row stores it)."""
    return path.split(_PREFIX, 1)[1].split("/", 1)[0]


def meets(current: str | None, wanted: str) -> bool:
    """Whether a user's current state is what a write wanted. Graph moves a user set to `enabled` who has
    already registered an MFA method on to `enforced` by itself (strongAuthenticationRequirements
    resource page: "their state changes automatically to enforced"), so `enforced` meets `enabled`."""
    return current == wanted or (wanted == "enabled" and current == "enforced")


def set_item(item_id: str, user_id: str, *, upn: str, wanted: str, before: str) -> BatchItem:
    """One `$batch` PATCH setting a user's state, audited against the user's UPN."""
    return BatchItem(
        item_id,
        "PATCH",
        requirements_path(user_id),
        body={"perUserMfaState": wanted},
        target=upn,
        action=SET_ACTION,
        before={"perUserMfaState": before},
    )


def state_in(body: dict[str, Any] | None) -> str | None:
    """The state in a stored PATCH body (what it asked for) or a `before` (what the user had)."""
    return (body or {}).get("perUserMfaState")


async def read_states(
    graph: GraphClient,
    user_ids: list[str],
    *,
    in_flight: int = READS_IN_FLIGHT,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str | None]:
    """Current per-user MFA state by user id (None when unreadable), read in batches of 20, `in_flight`
    batches at a time; `progress` is called with each batch's size once it is read."""
    gate = asyncio.Semaphore(in_flight)
    states: dict[str, str | None] = {}

    async def one(ids: list[str]) -> None:
        items = [BatchItem(str(i), "GET", requirements_path(uid)) for i, uid in enumerate(ids)]
        async with gate:
            results = await graph.batch_reads(items, version=VERSION)
        for item, uid in zip(items, ids, strict=True):
            result = results.get(item.id)
            ok = result is not None and result.ok and isinstance(result.body, dict)
            states[uid] = str(result.body.get("perUserMfaState")) if ok else None
        if progress:
            progress(len(ids))

    await asyncio.gather(*(one(user_ids[at : at + BATCH]) for at in range(0, len(user_ids), BATCH)))
    return states
