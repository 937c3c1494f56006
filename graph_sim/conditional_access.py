"""Conditional Access policy and named-location shapes: defaults, validation, merging."""

from __future__ import annotations

import copy
import ipaddress

from graph_sim.auth_strengths import BUILT_IN_STRENGTHS, strength

POLICY_STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
SD_ENABLED_MESSAGE = (
    "Security Defaults is enabled in the tenant. You must disable Security defaults "
    "before enabling a Conditional Access policy."
)
NAMED_LOCATION_TYPES = ("#microsoft.graph.ipNamedLocation", "#microsoft.graph.countryNamedLocation")
CIDR_TYPES = ("#microsoft.graph.iPv4CidrRange", "#microsoft.graph.iPv6CidrRange")
READ_ONLY = ("id", "createdDateTime", "modifiedDateTime", "templateId", "@odata.context")
# Location ids a policy may name besides named locations. The all-zero id is how Graph lists the legacy
# "MFA Trusted IPs" location in a policy (observed, e.g. DanielChronlund/DCToolbox#5).
MFA_TRUSTED_IPS_LOCATION_ID = "00000000-0000-0000-0000-000000000000"
SPECIAL_LOCATIONS = ("All", "AllTrusted", MFA_TRUSTED_IPS_LOCATION_ID)
# Documented limits of IP named locations (Conditional Access: Network assignment).
MAX_NAMED_LOCATIONS = 195
MAX_IP_RANGES = 2000
MIN_PREFIX_EXCLUSIVE = 8  # "Only CIDR masks greater than /8 are allowed"
SIGN_IN_FREQUENCY_LIMITS = {"hours": (1, 23), "days": (1, 365)}  # the admin center's limits (assumed)
SIGN_IN_FREQUENCY_KEYS = (
    "isEnabled",
    "type",
    "value",
    "authenticationType",
    "frequencyInterval",
    "@odata.type",
)

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
_SESSION_DEFAULTS = {
    "applicationEnforcedRestrictions": None,
    "cloudAppSecurity": None,
    "disableResilienceDefaults": None,
    "persistentBrowser": None,
    "signInFrequency": None,
}
_SIGN_IN_FREQUENCY_DEFAULTS = {
    "isEnabled": False,
    "type": None,
    "value": None,
    "authenticationType": "primaryAndSecondaryAuthentication",
    "frequencyInterval": "timeBased",
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
        grant = {**_GRANT_DEFAULTS, **p["grantControls"]}
        grant.pop("authenticationStrength@odata.context", None)
        auth = grant.get("authenticationStrength")
        if isinstance(auth, dict):
            # Graph stores a reference and returns the whole strength object; a PATCH may name another one.
            grant["authenticationStrength"] = strength(auth.get("id")) or auth
        p["grantControls"] = grant
    else:
        p["grantControls"] = None
    session = p.get("sessionControls")
    if isinstance(session, dict):
        session = {**_SESSION_DEFAULTS, **session}
        if isinstance(session.get("signInFrequency"), dict):
            sif = {**_SIGN_IN_FREQUENCY_DEFAULTS, **session["signInFrequency"]}
            sif.pop("@odata.type", None)
            session["signInFrequency"] = sif
        p["sessionControls"] = session
    else:
        p["sessionControls"] = None
    return p


def _has_session_control(session: object) -> bool:
    return isinstance(session, dict) and any(v not in (None, False) for v in session.values())


def validate_sign_in_frequency(sif: object) -> str | None:
    """Why a ``sessionControls.signInFrequency`` value is refused (signInFrequencySessionControl), or None."""
    where = "Invalid policy: sessionControls.signInFrequency"
    if sif is None:
        return None
    if not isinstance(sif, dict):
        return f"{where} must be an object."
    unknown = [k for k in sif if k not in SIGN_IN_FREQUENCY_KEYS]
    if unknown:
        return (
            f"{where}: property '{unknown[0]}' does not exist on type "
            "'microsoft.graph.signInFrequencySessionControl'."
        )
    if not isinstance(sif.get("isEnabled"), bool):
        return f"{where}.isEnabled is required and must be a boolean."
    interval = sif.get("frequencyInterval") or "timeBased"
    if interval not in ("timeBased", "everyTime"):
        return f"{where}.frequencyInterval must be timeBased or everyTime."
    auth_type = sif.get("authenticationType")
    if auth_type is not None and auth_type not in (
        "primaryAndSecondaryAuthentication",
        "secondaryAuthentication",
    ):
        return (
            f"{where}.authenticationType must be primaryAndSecondaryAuthentication or "
            "secondaryAuthentication."
        )
    kind, value = sif.get("type"), sif.get("value")
    if kind is not None and kind not in SIGN_IN_FREQUENCY_LIMITS:
        return f"{where}.type must be days or hours."
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        return f"{where}.value must be an integer."
    if interval == "everyTime":
        if kind is not None or value is not None:
            return f"{where}: type and value must be null when frequencyInterval is everyTime."
        return None
    if sif["isEnabled"] or kind is not None or value is not None:
        if kind is None or value is None:
            return (
                f"{where}: type (days or hours) and value are required when frequencyInterval is timeBased."
            )
        low, high = SIGN_IN_FREQUENCY_LIMITS[kind]
        if not low <= value <= high:
            return f"{where}.value must be between {low} and {high} {kind}."
    return None


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
    locations = cond.get("locations")
    if locations is not None:
        if not isinstance(locations, dict):
            return "Invalid policy: conditions.locations must be an object."
        for key in ("includeLocations", "excludeLocations"):
            ids = locations.get(key) or []
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return f"Invalid policy: conditions.locations.{key} must be a collection of strings."
    grant, session = p.get("grantControls"), p.get("sessionControls")
    if not grant and not _has_session_control(session):
        return "Invalid policy: at least one grant control or session control is required."
    if grant is not None:
        if not isinstance(grant, dict) or grant.get("operator") not in ("AND", "OR"):
            return "Invalid policy: grantControls.operator must be AND or OR."
        if not isinstance(grant.get("builtInControls") or [], list):
            return "Invalid policy: grantControls.builtInControls must be a collection."
        auth = grant.get("authenticationStrength")
        if auth is not None:
            if not isinstance(auth, dict) or not isinstance(auth.get("id"), str):
                return "Invalid policy: grantControls.authenticationStrength must be an object with an id."
            if "mfa" in (grant.get("builtInControls") or []):
                # Documented: "Require multifactor authentication and Require authentication strength can't
                # be used together in the same Conditional Access policy". The message is the simulator's.
                return (
                    "Invalid policy: the 'mfa' built-in control and an authentication strength can't be used "
                    "together in the same policy."
                )
    if session is not None:
        if not isinstance(session, dict):
            return "Invalid policy: sessionControls must be an object."
        problem = validate_sign_in_frequency(session.get("signInFrequency"))
        if problem:
            return problem
    return None


def validate_references(p: dict, location_ids: set[str]) -> str | None:
    """Why a policy naming a missing named location or authentication strength is refused, or None."""
    locations = (p.get("conditions") or {}).get("locations") or {}
    for key in ("includeLocations", "excludeLocations"):
        for loc_id in locations.get(key) or []:
            if loc_id not in SPECIAL_LOCATIONS and loc_id not in location_ids:
                return f"NamedLocation with id {loc_id} does not exist in the directory."
    auth = (p.get("grantControls") or {}).get("authenticationStrength")
    if isinstance(auth, dict) and auth.get("id") not in BUILT_IN_STRENGTHS:
        return f"Invalid policy: authentication strength policy '{auth.get('id')}' was not found."
    return None


def locations_referenced(policies) -> dict[str, list[str]]:
    """Named location id -> ids of the policies that include or exclude it."""
    used: dict[str, list[str]] = {}
    for pol in policies:
        locations = (pol.get("conditions") or {}).get("locations") or {}
        for loc_id in [
            *(locations.get("includeLocations") or []),
            *(locations.get("excludeLocations") or []),
        ]:
            used.setdefault(loc_id, []).append(pol["id"])
    return used


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
        if len(ranges) > MAX_IP_RANGES:
            return f"A named location can't have more than {MAX_IP_RANGES} IP ranges."
        for r in ranges:
            if not isinstance(r, dict) or r.get("@odata.type") not in CIDR_TYPES:
                return "Each ipRange needs '@odata.type' #microsoft.graph.iPv4CidrRange or iPv6CidrRange."
            cidr = r.get("cidrAddress")
            try:
                if not isinstance(cidr, str) or "/" not in cidr:
                    raise ValueError(cidr)
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                return f"Invalid cidrAddress '{cidr}': expected an IP range in CIDR notation."
            if (net.version == 4) != (r["@odata.type"] == CIDR_TYPES[0]):
                return f"cidrAddress '{cidr}' does not match its @odata.type."
            if net.prefixlen <= MIN_PREFIX_EXCLUSIVE:
                return (
                    f"cidrAddress '{cidr}': only CIDR masks greater than /{MIN_PREFIX_EXCLUSIVE} are allowed."
                )
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
