"""Conditional Access named locations (`/identity/conditionalAccess/namedLocations`), IP range ones:
read, create, change, and the ranges compared by network rather than by spelling.

https://learn.microsoft.com/graph/api/resources/ipnamedlocation
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

from migrations_engine.graph.client import GraphClient, GraphResponse
from migrations_engine.graph.resources.common import get_after_create, list_all

NAMED_LOCATIONS = "/identity/conditionalAccess/namedLocations"
IP_LOCATION = "#microsoft.graph.ipNamedLocation"
IPV4_RANGE, IPV6_RANGE = "#microsoft.graph.iPv4CidrRange", "#microsoft.graph.iPv6CidrRange"


def location_path(location_id: str) -> str:
    return f"{NAMED_LOCATIONS}/{quote(str(location_id))}"


def canonical(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(str(cidr).strip(), strict=False))
    except ValueError:
        return str(cidr).strip().lower()


def range_item(cidr: str) -> dict[str, str]:
    version = ipaddress.ip_network(cidr, strict=False).version
    return {"@odata.type": IPV4_RANGE if version == 4 else IPV6_RANGE, "cidrAddress": cidr}


def ranges_of(location: dict[str, Any] | None) -> list[str]:
    return [
        str(r.get("cidrAddress"))
        for r in (location or {}).get("ipRanges") or []
        if isinstance(r, dict) and r.get("cidrAddress")
    ]


def same_ranges(one: dict[str, Any] | None, other: dict[str, Any] | None) -> bool:
    return {canonical(c) for c in ranges_of(one)} == {canonical(c) for c in ranges_of(other)}


def range_items_of(location: dict[str, Any]) -> list[dict[str, Any]]:
    """The location's ranges as Graph wants them back (each with its @odata.type)."""
    items = []
    for entry in location.get("ipRanges") or []:
        if not isinstance(entry, dict) or not entry.get("cidrAddress"):
            continue
        item = {k: v for k, v in entry.items() if k in ("@odata.type", "cidrAddress")}
        if "@odata.type" not in item:
            try:
                item["@odata.type"] = range_item(item["cidrAddress"])["@odata.type"]
            except ValueError:
                continue
        items.append(item)
    return items


def location_snapshot(location: dict[str, Any]) -> dict[str, Any]:
    """What a rollback puts back (and the drift watch compares)."""
    return {
        "id": location.get("id"),
        "displayName": location.get("displayName"),
        "isTrusted": location.get("isTrusted"),
        "ipRanges": range_items_of(location),
    }


def new_location(name: str, cidrs: list[str]) -> dict[str, Any]:
    """The create body of a trusted IP location."""
    return {
        "@odata.type": IP_LOCATION,
        "displayName": name,
        "isTrusted": True,
        "ipRanges": [range_item(c) for c in cidrs],
    }


async def list_locations(graph: GraphClient) -> list[dict[str, Any]]:
    return await list_all(graph, NAMED_LOCATIONS)


async def named(graph: GraphClient, name: str) -> list[dict[str, Any]]:
    return [loc for loc in await list_locations(graph) if loc.get("displayName") == name]


async def get_location(graph: GraphClient, location_id: str, *, wait_seconds: float = 0) -> dict | None:
    """A named location by id (see `common.get_after_create`)."""
    return await get_after_create(graph, location_path(location_id), wait_seconds=wait_seconds)


def patch(
    graph: GraphClient, location_id: str, body: dict[str, Any], *, action: str, before: Any
) -> Awaitable[GraphResponse | None]:
    """PATCH an IP location (Graph wants the @odata.type in every update body)."""
    return graph.write(
        "PATCH",
        location_path(location_id),
        body={"@odata.type": IP_LOCATION, **body},
        action=action,
        target=location_id,
        before=before,
    )
