"""Real SKU and service-plan identifiers, and the subscribedSku objects built from them.

Consoles must match *service plans* (AAD_PREMIUM / AAD_PREMIUM_P2), not SKUs: P1 usually
arrives inside bundles such as Business Premium (SPB) or Microsoft 365 E3.
"""

from __future__ import annotations

AAD_PREMIUM = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
AAD_PREMIUM_P2 = "eec0eb4f-6444-4f95-aba0-50c24d67f998"

# servicePlanName -> servicePlanId
PLANS: dict[str, str] = {
    "AAD_PREMIUM": AAD_PREMIUM,
    "AAD_PREMIUM_P2": AAD_PREMIUM_P2,
    "MFA_PREMIUM": "8a256a2b-b617-496d-b51b-e76466e88db0",
    "ADALLOM_S_DISCOVERY": "932ad362-64a8-4783-9106-97849a1a30b9",
    "ADALLOM_S_STANDALONE": "2e2ddb96-6af9-4b1d-a3f0-d6ecfd22edb2",
    "INTUNE_A": "c1ec4a95-1f05-45b3-a911-aa3fa01094f5",
    "RMS_S_ENTERPRISE": "bea4c11e-220a-4e6d-8eb8-8ea15d019f90",
    "RMS_S_PREMIUM": "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3",
    "RMS_S_PREMIUM2": "5689bec4-755d-4753-8b61-40975025187c",
    "ATA": "14ab5db5-e6c4-4b20-b4bc-13e36fd2227f",
    "EXCHANGE_S_STANDARD": "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
    "EXCHANGE_S_ENTERPRISE": "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_FOUNDATION": "113feb6c-3fe4-4440-bddc-54d774bf0318",
    "SHAREPOINTSTANDARD": "c7699d2e-19aa-44de-8edf-1736da088ca1",
    "SHAREPOINTENTERPRISE": "5dbe027f-2339-4123-9542-606e4d348a72",
    "TEAMS1": "57ff2da0-773e-42df-b2af-ffb7a2317929",
    "MCOSTANDARD": "0feaeb32-d00e-4d66-bd5a-43b5b83db82c",
    "OFFICE_BUSINESS": "094e7854-93fc-4d55-b2c0-3ab5369ebdc1",
    "OFFICESUBSCRIPTION": "43de0ff5-c92c-492b-9116-175376d08c38",
    "ATP_ENTERPRISE": "f20fedf3-f3c3-43c3-8267-2bfdd51c0939",
    "FLOW_P2_VIRAL": "50e68c76-46c6-4674-81f9-75456511b170",
    "DYN365_CDS_VIRAL": "17ab22cd-a0b3-4536-910a-cb6eb12696c0",
}

# skuPartNumber -> (skuId, [servicePlanName, ...])
SKUS: dict[str, tuple[str, list[str]]] = {
    # Microsoft 365 Business Premium: P1 only as a plan inside the bundle.
    "SPB": (
        "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",
        [
            "AAD_PREMIUM",
            "MFA_PREMIUM",
            "INTUNE_A",
            "RMS_S_ENTERPRISE",
            "RMS_S_PREMIUM",
            "ATP_ENTERPRISE",
            "EXCHANGE_S_STANDARD",
            "SHAREPOINTSTANDARD",
            "TEAMS1",
            "MCOSTANDARD",
            "OFFICESUBSCRIPTION",
        ],
    ),
    # Enterprise Mobility + Security E5: carries AAD_PREMIUM_P2.
    "EMSPREMIUM": (
        "b05e124f-c7cc-45a0-a6aa-8cf78c946968",
        [
            "AAD_PREMIUM",
            "AAD_PREMIUM_P2",
            "MFA_PREMIUM",
            "INTUNE_A",
            "RMS_S_ENTERPRISE",
            "RMS_S_PREMIUM",
            "RMS_S_PREMIUM2",
            "ADALLOM_S_STANDALONE",
            "ATA",
        ],
    ),
    "AAD_PREMIUM": (
        "078d2b04-f1bd-4111-bbd4-b4b1b354cef4",
        ["AAD_PREMIUM", "MFA_PREMIUM", "ADALLOM_S_DISCOVERY"],
    ),
    "AAD_PREMIUM_P2": (
        "84a661c4-e949-4bd2-a560-ed7766fcaf2b",
        [
            "AAD_PREMIUM",
            "AAD_PREMIUM_P2",
            "MFA_PREMIUM",
            "ADALLOM_S_DISCOVERY",
        ],
    ),
    # Microsoft 365 E3 (includes P1).
    "SPE_E3": (
        "05e9a617-0261-4cee-bb44-138d3ef5d965",
        [
            "AAD_PREMIUM",
            "MFA_PREMIUM",
            "INTUNE_A",
            "RMS_S_ENTERPRISE",
            "RMS_S_PREMIUM",
            "ADALLOM_S_DISCOVERY",
            "EXCHANGE_S_ENTERPRISE",
            "SHAREPOINTENTERPRISE",
            "TEAMS1",
            "OFFICESUBSCRIPTION",
        ],
    ),
    # Office 365 E3: no Entra ID premium plan.
    "ENTERPRISEPACK": (
        "6fd2c87f-b296-42f0-b197-1e91e994b900",
        [
            "EXCHANGE_S_ENTERPRISE",
            "SHAREPOINTENTERPRISE",
            "TEAMS1",
            "OFFICESUBSCRIPTION",
            "RMS_S_ENTERPRISE",
        ],
    ),
    "O365_BUSINESS_ESSENTIALS": (
        "3b555118-da6a-4418-894f-7df1e2096870",
        [
            "EXCHANGE_S_STANDARD",
            "SHAREPOINTSTANDARD",
            "TEAMS1",
            "MCOSTANDARD",
        ],
    ),
    "O365_BUSINESS_PREMIUM": (
        "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
        [
            "EXCHANGE_S_STANDARD",
            "SHAREPOINTSTANDARD",
            "TEAMS1",
            "MCOSTANDARD",
            "OFFICE_BUSINESS",
        ],
    ),
    "FLOW_FREE": (
        "f30db892-07e9-47e9-837c-80727f46fd3d",
        ["FLOW_P2_VIRAL", "DYN365_CDS_VIRAL", "EXCHANGE_S_FOUNDATION"],
    ),
}


def subscribed_sku(tenant_id: str, part_number: str, enabled: int, consumed: int) -> dict:
    """One ``subscribedSku`` object as ``GET /v1.0/subscribedSkus`` returns it."""
    sku_id, plans = SKUS[part_number]
    return {
        "accountName": tenant_id.split("-")[0],
        "accountId": tenant_id,
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": consumed,
        "id": f"{tenant_id}_{sku_id}",
        "skuId": sku_id,
        "skuPartNumber": part_number,
        "subscriptionIds": [],
        "prepaidUnits": {"enabled": enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
        "servicePlans": [
            {
                "servicePlanId": PLANS[name],
                "servicePlanName": name,
                "provisioningStatus": "Success",
                "appliesTo": "User",
            }
            for name in plans
        ],
    }


def licence_tier(skus: list[dict]) -> str:
    """``P2``, ``P1`` or ``Free`` from the service plans of enabled SKUs (plans, not SKUs)."""
    plans = {
        p["servicePlanName"]
        for s in skus
        if s["capabilityStatus"] == "Enabled" and s["prepaidUnits"]["enabled"] > 0
        for p in s["servicePlans"]
    }
    if "AAD_PREMIUM_P2" in plans:
        return "P2"
    if "AAD_PREMIUM" in plans:
        return "P1"
    return "Free"
