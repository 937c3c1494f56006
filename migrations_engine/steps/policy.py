"""The Conditional Access policy the migration converges on, and how existing ones are recognised."""

from __future__ import annotations

import copy
from typing import Any

from migrations_engine.census import requires_mfa_for_all
from migrations_engine.steps.base import POLICY_NAME, StepContext

REPORT_ONLY = "enabledForReportingButNotEnforced"


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
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
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
    grant = policy.get("grantControls") or {}
    if "mfa" not in (grant.get("builtInControls") or []) and not grant.get("authenticationStrength"):
        problems.append("does not require MFA")
    return problems


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
    return conditions
