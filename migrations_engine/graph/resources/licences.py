"""The tenant's licences (`/subscribedSkus`): which Entra ID tier its active SKUs give.

https://learn.microsoft.com/graph/api/subscribedsku-list
"""

from __future__ import annotations

from typing import Any

from migrations_engine.graph.client import GraphClient
from tenants.choices import LicenceTier

SUBSCRIBED_SKUS = "/subscribedSkus"
AAD_PREMIUM_P1 = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
AAD_PREMIUM_P2 = "eec0eb4f-6444-4f95-aba0-50c24d67f998"


async def subscribed_skus(graph: GraphClient) -> list[dict[str, Any]]:
    return (await graph.get_json(SUBSCRIBED_SKUS)).get("value", [])


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
