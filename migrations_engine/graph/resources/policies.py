"""Conditional Access policies (`/identity/conditionalAccess/policies`): read, create, change, delete,
and the normalised form two reads of a policy are compared in.

https://learn.microsoft.com/graph/api/resources/conditionalaccesspolicy
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

from migrations_engine.graph.client import GraphClient, GraphResponse
from migrations_engine.graph.resources.common import get_after_create, list_all

POLICIES = "/identity/conditionalAccess/policies"
REPORT_ONLY = "enabledForReportingButNotEnforced"
# What a plan's intended writes name instead of an id the policy does not have yet (never sent).
PLANNED_POLICY = "(policy)"
PLANNED_SESSION_POLICY = "(session policy)"


def policy_path(policy_id: str) -> str:
    return f"{POLICIES}/{quote(str(policy_id), safe='() ')}"


async def list_policies(graph: GraphClient) -> list[dict[str, Any]]:
    return await list_all(graph, POLICIES)


async def named(graph: GraphClient, name: str) -> list[dict[str, Any]]:
    """The policies called `name` (Graph does not filter policies by name: listed, then matched)."""
    return [p for p in await list_policies(graph) if p.get("displayName") == name]


async def get_policy(graph: GraphClient, policy_id: str, *, wait_seconds: float = 0) -> dict[str, Any] | None:
    """A policy by id (see `common.get_after_create`)."""
    return await get_after_create(graph, policy_path(policy_id), wait_seconds=wait_seconds)


def create(
    graph: GraphClient, body: dict[str, Any], *, action: str, target: str = ""
) -> Awaitable[GraphResponse | None]:
    return graph.write("POST", POLICIES, body=body, action=action, target=target)


def patch(
    graph: GraphClient, policy_id: str, body: dict[str, Any], *, action: str, before: Any = None
) -> Awaitable[GraphResponse | None]:
    target = "" if policy_id in (PLANNED_POLICY, PLANNED_SESSION_POLICY) else policy_id
    return graph.write(
        "PATCH", policy_path(policy_id), body=body, action=action, target=target, before=before
    )


def enable(
    graph: GraphClient, policy_id: str, *, action: str, was: str | None = None
) -> Awaitable[GraphResponse | None]:
    """Turn a policy on (`was`: the state read before, for the audit row; None in a plan)."""
    before = None if was is None else {"state": was}
    return patch(graph, policy_id, {"state": "enabled"}, action=action, before=before)


def normalized(value: Any) -> Any:
    """A policy fragment in a form two reads can be compared by: empty lists, empty objects and nulls
    dropped (Graph returns defaults a create body leaves out), lists of strings sorted."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items() if not k.startswith("@odata")}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        items = [v for v in items if v not in (None, [], {})]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value
