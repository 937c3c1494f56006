"""Security defaults (`/policies/identitySecurityDefaultsEnforcementPolicy`): read and switch.

https://learn.microsoft.com/graph/api/resources/identitysecuritydefaultsenforcementpolicy
"""

from __future__ import annotations

from collections.abc import Awaitable

from migrations_engine.graph.client import GraphClient, GraphResponse

SECURITY_DEFAULTS = "/policies/identitySecurityDefaultsEnforcementPolicy"


async def is_on(graph: GraphClient) -> bool:
    return bool((await graph.get_json(SECURITY_DEFAULTS)).get("isEnabled"))


def switch(
    graph: GraphClient, enabled: bool, *, action: str, before: bool | None = None
) -> Awaitable[GraphResponse | None]:
    """PATCH `isEnabled`; `before` is what the caller read (omitted in a plan, which read nothing)."""
    return graph.write(
        "PATCH",
        SECURITY_DEFAULTS,
        body={"isEnabled": enabled},
        action=action,
        before=None if before is None else {"isEnabled": before},
    )
