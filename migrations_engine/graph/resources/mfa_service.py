"""The legacy MFA service settings (`/beta/policies/mfaServicePolicy`: trusted IPs, remember-MFA days,
app passwords). Microsoft does not document this endpoint."""

from __future__ import annotations

from typing import Any

from migrations_engine.graph.client import GraphClient
from migrations_engine.graph.errors import GraphError

MFA_SERVICE_POLICY = "/policies/mfaServicePolicy"
NOT_SERVED = (
    "Graph does not serve /beta/policies/mfaServicePolicy for this tenant (it is undocumented; 400/403/404)"
)


async def legacy_mfa_settings(graph: GraphClient) -> dict[str, Any] | None:
    """The settings as Graph answers them; None when Graph does not serve them (an unknown segment,
    400/404) or refuses them (403), or when the answer is not an object."""
    try:
        body = await graph.get_json(MFA_SERVICE_POLICY, version="beta")
    except GraphError as exc:
        if exc.status in (400, 403, 404):
            return None
        raise
    return body if isinstance(body, dict) else None
