"""The Conditional Access policy the migration converges on, and how existing ones are recognised."""

from __future__ import annotations

import copy
from typing import Any

from migrations_engine.census import requires_mfa_for_all
from migrations_engine.steps.base import POLICY_NAME, StepContext

REPORT_ONLY = "enabledForReportingButNotEnforced"
MFA_GRANT = {"operator": "OR", "builtInControls": ["mfa"]}
# What a verified run remembers of its policy (`RunItem.state["policy_baseline"]`): enough to tell later
# whether anyone changed it (the drift watch) and to put it back (a re-run of the same scope).
BASELINE_FIELDS = ("id", "displayName", "state", "conditions", "grantControls")


def scope_users(ctx: StepContext) -> dict[str, Any]:
    """`conditions.users` for this run: everyone (full) or the pilot group, minus break-glass."""
    users: dict[str, Any] = {"excludeUsers": sorted(ctx.state.get("break_glass_ids", []))}
    if ctx.state.get("break_glass_group"):
        users["excludeGroups"] = [ctx.state["break_glass_group"]]
    if ctx.mode == "pilot":
        users["includeUsers"] = []
        users["includeGroups"] = [str(ctx.run.pilot_group_id)]
    else:
        users["includeUsers"] = ["All"]
    return users


def desired_policy(ctx: StepContext) -> dict[str, Any]:
    """The article's policy: all (or pilot) users, all cloud apps, all client apps, require MFA."""
    return {
        "displayName": POLICY_NAME,
        "state": REPORT_ONLY,
        "conditions": {
            "users": scope_users(ctx),
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": copy.deepcopy(MFA_GRANT),
    }


def is_candidate(policy: dict[str, Any], ctx: StepContext) -> bool:
    """A policy this run may adopt instead of creating one: ours by name, or one that already requires
    MFA for the same users and all apps (a Microsoft-managed one included)."""
    if policy.get("displayName") == POLICY_NAME:
        return True
    if ctx.mode == "pilot":
        conditions = policy.get("conditions") or {}
        users = conditions.get("users") or {}
        apps = conditions.get("applications") or {}
        grant = policy.get("grantControls") or {}
        return (
            str(ctx.run.pilot_group_id) in (users.get("includeGroups") or [])
            and "All" in (apps.get("includeApplications") or [])
            and ("mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength")))
        )
    return requires_mfa_for_all(policy)


def scope_problems(policy: dict[str, Any], ctx: StepContext) -> list[str]:
    """What keeps a policy from being the one this run needs (empty when it fits)."""
    problems = []
    users = (policy.get("conditions") or {}).get("users") or {}
    wanted = scope_users(ctx)
    missing = set(wanted["excludeUsers"]) - set(users.get("excludeUsers") or [])
    if missing:
        problems.append(f"break-glass accounts not excluded: {len(missing)}")
    if wanted.get("excludeGroups") and not set(wanted["excludeGroups"]) <= set(
        users.get("excludeGroups") or []
    ):
        problems.append("break-glass group not excluded")
    if ctx.mode == "pilot":
        if wanted["includeGroups"][0] not in (users.get("includeGroups") or []):
            problems.append("pilot group not included")
    elif "All" not in (users.get("includeUsers") or []):
        problems.append("does not include all users")
    apps = (policy.get("conditions") or {}).get("applications") or {}
    if "All" not in (apps.get("includeApplications") or []):
        problems.append("does not cover all cloud apps")
    if not requires_mfa_grant(policy):
        problems.append("does not require MFA")
    return problems


def requires_mfa_grant(policy: dict[str, Any]) -> bool:
    grant = policy.get("grantControls") or {}
    return "mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength"))


def scope_fix(policy: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The PATCH body that fixes what `scope_problems` names: our scope and exclusions merged into the
    conditions, and the MFA grant when the policy no longer asks for MFA."""
    body: dict[str, Any] = {"conditions": fixed_conditions(policy, ctx)}
    if not requires_mfa_grant(policy):
        body["grantControls"] = copy.deepcopy(MFA_GRANT)
    return body


def fixed_conditions(policy: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The policy's conditions with our scope and break-glass exclusions merged in (nothing removed
    but what full scope replaces)."""
    conditions = copy.deepcopy(policy.get("conditions") or {})
    users = conditions.setdefault("users", {})
    wanted = scope_users(ctx)
    users["excludeUsers"] = sorted(set(users.get("excludeUsers") or []) | set(wanted["excludeUsers"]))
    if wanted.get("excludeGroups"):
        users["excludeGroups"] = sorted(set(users.get("excludeGroups") or []) | set(wanted["excludeGroups"]))
    if ctx.mode == "pilot":
        users["includeGroups"] = sorted(set(users.get("includeGroups") or []) | set(wanted["includeGroups"]))
    else:
        users["includeUsers"] = ["All"]
        users["includeGroups"] = []
    apps = conditions.setdefault("applications", {})
    if "All" not in (apps.get("includeApplications") or []):
        apps["includeApplications"] = ["All"]
    return conditions


def normalized(value: Any) -> Any:
    """A policy fragment in a form two reads can be compared by: empty lists, empty objects and nulls
    dropped (Graph returns defaults a create body leaves out), lists of strings sorted."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items() if not k.startswith("@odata")}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        items = [v for v in items if v not in (None, [], {})]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value


def baseline_of(policy: dict[str, Any]) -> dict[str, Any]:
    """The part of a policy a verified run remembers (see BASELINE_FIELDS)."""
    return {key: copy.deepcopy(policy.get(key)) for key in BASELINE_FIELDS}


def restore_fix(policy: dict[str, Any], baseline: dict[str, Any], ctx: StepContext) -> tuple[dict, list[str]]:
    """The PATCH body that puts a policy back as an earlier run of the same scope verified it (its
    conditions with this run's scope and break-glass merged in, its grant), and what it fixes.

    A disabled policy goes to report-only with the fix: report-only first, the cut-over enables it. An
    enabled one stays enabled (turning it to report-only would leave users without MFA meanwhile)."""
    body: dict[str, Any] = {}
    fixes: list[str] = []
    wanted = fixed_conditions({"conditions": baseline.get("conditions") or {}}, ctx)
    if normalized(wanted) != normalized(policy.get("conditions") or {}):
        body["conditions"] = wanted
        fixes.append("conditions (scope, exclusions, apps) as verified")
    grant = baseline.get("grantControls") or MFA_GRANT
    if normalized(grant) != normalized(policy.get("grantControls") or {}):
        body["grantControls"] = copy.deepcopy(grant)
        fixes.append("grant controls as verified")
    if policy.get("state") == "disabled":
        body["state"] = REPORT_ONLY
        fixes.append("disabled -> report-only")
    return body, fixes
