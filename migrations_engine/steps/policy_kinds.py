"""What the Conditional Access policies a tenant already has mean for the move: which require MFA, which
Microsoft manages, which exclude trusted locations from MFA, which block everyone.

Microsoft-managed policies are the ones Microsoft creates in a tenant (they can be switched off but not
deleted or renamed); `census.microsoft_managed` says how they are recognised. They are adopted, never
duplicated, and the console shows them as such.
"""

from __future__ import annotations

from typing import Any

from migrations_engine.census.read import microsoft_managed, requires_mfa_for_all


def asks_mfa(policy: dict[str, Any]) -> bool:
    grant = policy.get("grantControls") or {}
    return "mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength"))


def excludes_trusted_locations(policy: dict[str, Any]) -> bool:
    """An MFA policy that skips trusted locations (or only applies outside them)."""
    locations = (policy.get("conditions") or {}).get("locations") or {}
    return asks_mfa(policy) and (
        "AllTrusted" in (locations.get("excludeLocations") or [])
        or bool(set(locations.get("includeLocations") or []) - {"All"})
    )


def scope_of(policy: dict[str, Any]) -> str:
    users = (policy.get("conditions") or {}).get("users") or {}
    if "All" in (users.get("includeUsers") or []):
        scope = "all users"
    else:
        parts = []
        for key, label in (("includeUsers", "users"), ("includeGroups", "groups"), ("includeRoles", "roles")):
            if users.get(key):
                parts.append(f"{len(users[key])} {label}")
        scope = ", ".join(parts) or "nobody"
    excluded = sum(len(users.get(key) or []) for key in ("excludeUsers", "excludeGroups", "excludeRoles"))
    return scope + (f" minus {excluded} exclusions" if excluded else "")


def summary(policy: dict[str, Any], managed_ids: set[str] | None = None) -> dict[str, Any]:
    return {
        "id": policy.get("id"),
        "displayName": policy.get("displayName"),
        "state": policy.get("state"),
        "scope": scope_of(policy),
        "managed": microsoft_managed(policy, managed_ids),
        "mfa_for_all": requires_mfa_for_all(policy),
    }


def describe_policies(
    policies: list[dict[str, Any]], managed_ids: set[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The policies sorted into what readiness reports (a policy may be in several lists)."""
    live = [p for p in policies if p.get("state") != "disabled"]
    return {
        "covering": [summary(p, managed_ids) for p in live if asks_mfa(p)],
        "managed": [summary(p, managed_ids) for p in policies if microsoft_managed(p, managed_ids)],
        "trusted_location_exclusions": [
            summary(p, managed_ids) for p in live if excludes_trusted_locations(p)
        ],
        "blocking": [
            summary(p, managed_ids)
            for p in live
            if "block" in ((p.get("grantControls") or {}).get("builtInControls") or [])
            and "All" in (((p.get("conditions") or {}).get("users") or {}).get("includeUsers") or [])
            and ((p.get("conditions") or {}).get("clientAppTypes") or ["all"]) == ["all"]
        ],
    }
