"""What the Conditional Access policies a tenant already has mean for the move: which require MFA of
everyone, which Microsoft manages, which exclude trusted locations from MFA, which block everyone.

Microsoft-managed policies are the ones Microsoft creates in a tenant (they can be switched off but not
deleted or renamed); `microsoft_managed` says how they are recognised. They are adopted, never
duplicated, and the console shows them as such.
"""

from __future__ import annotations

from typing import Any

from migrations_engine.graph.resources.grants import asks_mfa, blocks
from tenants.choices import PolicyState

# Microsoft-managed policies carry no marker property in Graph. The documented way to find them is the
# directory audit log (audit_logs.microsoft_managed_ids): Microsoft's "Microsoft Managed Policy Manager"
# app creates them. The audit log keeps 30 days, so older ones are recognised by name too
# (Microsoft-managed policies cannot be renamed); only Microsoft's long, specific names are listed, not
# ones an admin would also choose.
MICROSOFT_MANAGED_NAMES = frozenset(
    {
        "Multifactor authentication for admins accessing Microsoft Admin Portals",
        "Multifactor authentication for per-user multifactor authentication users",
        "Multifactor authentication and reauthentication for risky sign-ins",
        # the names these policies were first announced under
        "Require multifactor authentication for admin portals",
        "Require multifactor authentication for per-user multifactor authentication users",
        "Require multifactor authentication for high-risk sign-ins",
    }
)


def _users(policy: dict[str, Any]) -> dict[str, Any]:
    return (policy.get("conditions") or {}).get("users") or {}


def _locations(policy: dict[str, Any]) -> dict[str, Any]:
    return (policy.get("conditions") or {}).get("locations") or {}


def requires_mfa_for_all(policy: dict[str, Any]) -> bool:
    """True for a policy that requires MFA of all users for all apps (exclusions allowed)."""
    apps = (policy.get("conditions") or {}).get("applications") or {}
    return (
        asks_mfa(policy)
        and "All" in (_users(policy).get("includeUsers") or [])
        and "All" in (apps.get("includeApplications") or [])
    )


def microsoft_managed(policy: dict[str, Any], managed_ids: set[str] | None = None) -> bool:
    """True for a policy Microsoft created and manages (see MICROSOFT_MANAGED_NAMES)."""
    return policy.get("id") in (managed_ids or ()) or policy.get("displayName") in MICROSOFT_MANAGED_NAMES


def best_policy_state(policies: list[dict[str, Any]]) -> str:
    """The strongest state among MFA-for-all policies: enabled > report-only > disabled > none."""
    order = [PolicyState.ENABLED, PolicyState.REPORT_ONLY, PolicyState.DISABLED]
    states = {p.get("state") for p in policies if requires_mfa_for_all(p)}
    for state in order:
        if state.value in states:
            return state
    return PolicyState.NONE


def excludes_trusted_locations(policy: dict[str, Any]) -> bool:
    """An MFA policy that skips trusted locations (or only applies outside them)."""
    locations = _locations(policy)
    return asks_mfa(policy) and (
        "AllTrusted" in (locations.get("excludeLocations") or [])
        or bool(set(locations.get("includeLocations") or []) - {"All"})
    )


def trusted_exclusions(policies: list[dict[str, Any]], location_id: str | None) -> list[dict[str, Any]]:
    """MFA policies that exclude trusted locations ("AllTrusted", or this location by id)."""
    hits = []
    for policy in policies:
        excluded = set(_locations(policy).get("excludeLocations") or [])
        if asks_mfa(policy) and ("AllTrusted" in excluded or (location_id and location_id in excluded)):
            hits.append(policy)
    return hits


def referencing_policies(policies: list[dict[str, Any]], location_id: str) -> list[dict[str, Any]]:
    """Policies whose location condition names the location (included or excluded)."""
    found = []
    for policy in policies:
        locations = _locations(policy)
        if location_id in (locations.get("includeLocations") or []) + (
            locations.get("excludeLocations") or []
        ):
            found.append(policy)
    return found


def blocks_everyone(policy: dict[str, Any]) -> bool:
    """A block grant for all users and every client app."""
    return (
        blocks(policy)
        and "All" in (_users(policy).get("includeUsers") or [])
        and ((policy.get("conditions") or {}).get("clientAppTypes") or ["all"]) == ["all"]
    )


def scope_of(policy: dict[str, Any]) -> str:
    users = _users(policy)
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
    """A policy as the readiness report lists it."""
    return {
        "id": policy.get("id"),
        "displayName": policy.get("displayName"),
        "state": policy.get("state"),
        "scope": scope_of(policy),
        "managed": microsoft_managed(policy, managed_ids),
        "mfa_for_all": requires_mfa_for_all(policy),
    }


def census_summary(policy: dict[str, Any], managed_ids: set[str] | None = None) -> dict[str, Any]:
    """A policy as the census keeps it."""
    return {
        "id": policy.get("id"),
        "displayName": policy.get("displayName"),
        "state": policy.get("state"),
        "templateId": policy.get("templateId"),
        "requiresMfaForAll": requires_mfa_for_all(policy),
        "microsoftManaged": microsoft_managed(policy, managed_ids),
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
        "blocking": [summary(p, managed_ids) for p in live if blocks_everyone(p)],
    }
