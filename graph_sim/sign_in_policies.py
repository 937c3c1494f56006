"""Which Conditional Access policies a sign-in log entry records (``appliedConditionalAccessPolicies``).

A sign-in lists every policy of the tenant it was evaluated against (List signIns example,
https://learn.microsoft.com/graph/api/signin-list), each as an appliedConditionalAccessPolicy
(https://learn.microsoft.com/graph/api/resources/appliedconditionalaccesspolicy): ``id``, ``displayName``,
``enforcedGrantControls``, ``enforcedSessionControls`` and ``result`` (success, failure, notApplied,
notEnabled, reportOnlySuccess, reportOnlyFailure, reportOnlyNotApplied). Whether a policy applied is the
simulator's What-If evaluation for the entry's user, app, client and IP address; ``conditionalAccessStatus``
follows from the enforced policies' results (success, failure or notApplied).
"""

from __future__ import annotations

from graph_sim.evaluator import WhatIfError, what_if
from graph_sim.state import Tenant

# clientAppUsed -> conditionalAccessClientApp
CLIENT_APP_TYPES = {
    "Browser": "browser",
    "Mobile Apps and Desktop clients": "mobileAppsAndDesktopClients",
    "Exchange ActiveSync": "exchangeActiveSync",
}
# grantControls.builtInControls / sessionControls keys -> the names sign-in logs record
GRANT_NAMES = {"mfa": "Mfa", "block": "Block", "compliantDevice": "RequireCompliantDevice"}
SESSION_NAMES = {
    "signInFrequency": "SignInFrequency",
    "persistentBrowser": "PersistentBrowserSessionMode",
    "applicationEnforcedRestrictions": "AppEnforcedRestrictions",
    "cloudAppSecurity": "CloudAppSecurity",
}


def _grant_controls(policy: dict) -> list[str]:
    grant = policy.get("grantControls") or {}
    names = [GRANT_NAMES.get(c, c[:1].upper() + c[1:]) for c in grant.get("builtInControls") or []]
    if grant.get("authenticationStrength"):
        names.append("RequireAuthenticationStrength")
    return names


def _session_controls(policy: dict) -> list[str]:
    session = policy.get("sessionControls") or {}
    return [
        SESSION_NAMES.get(k, k[:1].upper() + k[1:])
        for k, v in session.items()
        if isinstance(v, dict) and v.get("isEnabled", True) and k in SESSION_NAMES
    ]


def _result(policy: dict, applies: bool, failed: bool) -> str:
    state = policy.get("state")
    if state == "disabled":
        return "notEnabled"
    if state == "enabledForReportingButNotEnforced":
        return (
            "reportOnlyNotApplied" if not applies else "reportOnlyFailure" if failed else "reportOnlySuccess"
        )
    return "notApplied" if not applies else "failure" if failed else "success"


def applied_policies(tenant: Tenant, entry: dict) -> tuple[list[dict], str]:
    """The entry's appliedConditionalAccessPolicies and conditionalAccessStatus, from the tenant's
    policies as they are now. A legacy client cannot answer an MFA prompt, so an applied MFA policy
    fails for it, as it does for any failed sign-in."""
    body = {
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": entry["userId"]},
        "signInContext": {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": [entry["appId"]],
        },
        "signInConditions": {
            "clientAppType": CLIENT_APP_TYPES.get(entry["clientAppUsed"], "other"),
            "ipAddress": entry.get("ipAddress"),
            "country": (entry.get("location") or {}).get("countryOrRegion"),
        },
    }
    try:
        evaluated = what_if(tenant, body)
    except WhatIfError:  # a user no longer in the directory: nothing to evaluate against
        return [], "notApplied"
    sign_in_failed = bool((entry.get("status") or {}).get("errorCode"))
    legacy = entry["clientAppUsed"] not in CLIENT_APP_TYPES or entry["clientAppUsed"] == "Exchange ActiveSync"
    applied = []
    for policy in evaluated:
        grants = _grant_controls(policy)
        failed = sign_in_failed or "Block" in grants or (legacy and "Mfa" in grants)
        result = _result(policy, bool(policy["policyApplies"]), failed)
        off = result == "notEnabled"
        applied.append(
            {
                "id": policy["id"],
                "displayName": policy.get("displayName"),
                "enforcedGrantControls": [] if off else grants,
                "enforcedSessionControls": [] if off else _session_controls(policy),
                "result": result,
            }
        )
    results = {p["result"] for p in applied}
    status = "failure" if "failure" in results else "success" if "success" in results else "notApplied"
    return applied, status


def stamp(tenant: Tenant, entries: list[dict]) -> None:
    """Fill each entry's appliedConditionalAccessPolicies and conditionalAccessStatus."""
    for entry in entries:
        entry["appliedConditionalAccessPolicies"], entry["conditionalAccessStatus"] = applied_policies(
            tenant, entry
        )
