"""Conditional Access policy and named-location shapes: defaults, validation, merging."""

from __future__ import annotations

import copy
import ipaddress

POLICY_STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
SD_ENABLED_MESSAGE = (
    "Security Defaults is enabled in the tenant. You must disable Security defaults "
    "before enabling a Conditional Access policy."
)
NAMED_LOCATION_TYPES = ("#microsoft.graph.ipNamedLocation", "#microsoft.graph.countryNamedLocation")
CIDR_TYPES = ("#microsoft.graph.iPv4CidrRange", "#microsoft.graph.iPv6CidrRange")
READ_ONLY = ("id", "createdDateTime", "modifiedDateTime", "templateId", "@odata.context")

_USERS_DEFAULTS = {
    "includeUsers": [],
    "excludeUsers": [],
    "includeGroups": [],
    "excludeGroups": [],
    "includeRoles": [],
    "excludeRoles": [],
    "includeGuestsOrExternalUsers": None,
    "excludeGuestsOrExternalUsers": None,
}
_APPS_DEFAULTS = {
    "includeApplications": [],
    "excludeApplications": [],
    "includeUserActions": [],
    "includeAuthenticationContextClassReferences": [],
    "applicationFilter": None,
}
_CONDITION_DEFAULTS = {
    "userRiskLevels": [],
    "signInRiskLevels": [],
    "clientAppTypes": ["all"],
    "servicePrincipalRiskLevels": [],
    "platforms": None,
    "locations": None,
    "devices": None,
    "clientApplications": None,
    "authenticationFlows": None,
}
_GRANT_DEFAULTS = {
    "operator": "OR",
    "builtInControls": [],
    "customAuthenticationFactors": [],
    "termsOfUse": [],
    "authenticationStrength": None,
}


def deep_merge(base: dict, patch: dict) -> dict:
    """PATCH semantics used here: nested objects merge, lists and scalars replace."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def normalize_policy(body: dict) -> dict:
    """Fill the defaults Graph returns so every policy has the full documented shape."""
    p = copy.deepcopy(body)
    p.pop("@odata.context", None)
    p.setdefault("description", None)
    p.setdefault("templateId", None)
    p.setdefault("partialEnablementStrategy", None)
    cond = p.get("conditions") if isinstance(p.get("conditions"), dict) else {}
    cond = {**_CONDITION_DEFAULTS, **cond}
    cond["users"] = {**_USERS_DEFAULTS, **(cond.get("users") or {})}
    cond["applications"] = {**_APPS_DEFAULTS, **(cond.get("applications") or {})}
    p["conditions"] = cond
    if isinstance(p.get("grantControls"), dict):
        p["grantControls"] = {**_GRANT_DEFAULTS, **p["grantControls"]}
    else:
        p["grantControls"] = None
    p.setdefault("sessionControls", None)
    return p


def validate_policy(p: dict) -> str | None:
    """The first reason Graph would refuse this policy body, or None."""
    if not isinstance(p.get("displayName"), str) or not p["displayName"].strip():
        return "Invalid policy: displayName is required."
    if p.get("state") not in POLICY_STATES:
        return f"Invalid policy: state must be one of {', '.join(POLICY_STATES)}."
    cond = p.get("conditions")
    if not isinstance(cond, dict):
        return "Invalid policy: conditions are required."
    users, apps = cond.get("users"), cond.get("applications")
    if not isinstance(users, dict) or not any(
        users.get(k)
        for k in ("includeUsers", "includeGroups", "includeRoles", "includeGuestsOrExternalUsers")
    ):
        return "Invalid policy: conditions.users must include at least one user rule (e.g. includeUsers)."
    if not isinstance(apps, dict) or not any(
        apps.get(k)
        for k in ("includeApplications", "includeUserActions", "includeAuthenticationContextClassReferences")
    ):
        return "Invalid policy: conditions.applications must include at least one application rule."
    for key in (
        "includeUsers",
        "excludeUsers",
        "includeGroups",
        "excludeGroups",
        "includeRoles",
        "excludeRoles",
    ):
        if not isinstance(users.get(key, []), list):
            return f"Invalid policy: conditions.users.{key} must be a collection."
    grant, session = p.get("grantControls"), p.get("sessionControls")
    if not grant and not session:
        return "Invalid policy: at least one grant control or session control is required."
    if grant is not None:
        if not isinstance(grant, dict) or grant.get("operator") not in ("AND", "OR"):
            return "Invalid policy: grantControls.operator must be AND or OR."
        if not isinstance(grant.get("builtInControls", []), list):
            return "Invalid policy: grantControls.builtInControls must be a collection."
    return None


def validate_named_location(body: dict, *, partial: bool) -> str | None:
    """Why a named location POST/PATCH body is refused, or None. @odata.type is always required."""
    odata_type = body.get("@odata.type")
    if odata_type is None:
        return "The '@odata.type' property is required on named location requests."
    if odata_type not in NAMED_LOCATION_TYPES:
        return f"Invalid '@odata.type' value '{odata_type}' for a named location."
    if not partial and not (isinstance(body.get("displayName"), str) and body["displayName"].strip()):
        return "displayName is required."
    if odata_type == "#microsoft.graph.ipNamedLocation" and ("ipRanges" in body or not partial):
        ranges = body.get("ipRanges")
        if not isinstance(ranges, list) or not ranges:
            return "ipRanges must contain at least one range."
        for r in ranges:
            if not isinstance(r, dict) or r.get("@odata.type") not in CIDR_TYPES:
                return "Each ipRange needs '@odata.type' #microsoft.graph.iPv4CidrRange or iPv6CidrRange."
            try:
                net = ipaddress.ip_network(str(r.get("cidrAddress")), strict=False)
            except ValueError:
                return f"Invalid cidrAddress '{r.get('cidrAddress')}'."
            if (net.version == 4) != (r["@odata.type"] == CIDR_TYPES[0]):
                return f"cidrAddress '{r.get('cidrAddress')}' does not match its @odata.type."
    if "isTrusted" in body and not isinstance(body["isTrusted"], bool):
        return "isTrusted must be a boolean."
    return None


def mfa_all_users_policy(
    policy_id: str,
    name: str,
    state: str,
    created: str,
    *,
    template_id: str | None = None,
    exclude_users: list[str] = (),
    exclude_groups: list[str] = (),
) -> dict:
    """A 'require MFA for all users, all apps' policy in the full Graph shape."""
    return normalize_policy(
        {
            "id": policy_id,
            "templateId": template_id,
            "displayName": name,
            "createdDateTime": created,
            "modifiedDateTime": None,
            "state": state,
            "conditions": {
                "clientAppTypes": ["all"],
                "applications": {"includeApplications": ["All"]},
                "users": {
                    "includeUsers": ["All"],
                    "excludeUsers": list(exclude_users),
                    "excludeGroups": list(exclude_groups),
                },
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        }
    )
