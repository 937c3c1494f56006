"""The Conditional Access policy the migration converges on, and how existing ones are recognised."""

from __future__ import annotations

import copy
from typing import Any

from migrations_engine.census.read import requires_mfa_for_all
from migrations_engine.runs.options import GRANTS, STRENGTH_MFA, STRENGTH_PHISHING_RESISTANT, grant_controls
from migrations_engine.steps.base import POLICY_NAME, StepContext

REPORT_ONLY = "enabledForReportingButNotEnforced"
MFA_GRANT = {"operator": "OR", "builtInControls": ["mfa"]}
# How strong a grant is, to tell an upgrade from a downgrade: the built-in `mfa` control and the built-in
# "Multifactor authentication" strength ask the same; "Passwordless MFA" (…03) more; phishing-resistant most.
# A custom strength is not ranked (it may be stronger than any built-in one).
STRENGTH_RANKS = {
    STRENGTH_MFA: 1,
    "00000000-0000-0000-0000-000000000003": 2,
    STRENGTH_PHISHING_RESISTANT: 3,
}
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
        "grantControls": grant_controls(wanted_grant(ctx)),
    }


def wanted_grant(ctx: Any) -> str:
    """The run's `grant` option ("mfa", "mfa_strength" or "phishing_resistant")."""
    grant = (getattr(ctx, "settings", None) or {}).get("grant") or "mfa"
    return grant if grant in GRANTS else "mfa"


def strength_id(grant: dict[str, Any] | None) -> str | None:
    strength = (grant or {}).get("authenticationStrength")
    return str(strength.get("id")) if isinstance(strength, dict) and strength.get("id") else None


def grant_matches(grant: dict[str, Any] | None, option: str) -> bool:
    """The grant asks exactly what the option asks: the `mfa` control and no strength, or the option's
    strength and not the `mfa` control (with OR, `mfa` beside a strength would let plain MFA through)."""
    grant = grant or {}
    wanted = GRANTS[option][1]
    has_mfa = "mfa" in (grant.get("builtInControls") or [])
    if wanted is None:
        return has_mfa and strength_id(grant) is None
    return strength_id(grant) == wanted and not has_mfa


def grant_rank(grant: dict[str, Any] | None) -> int | None:
    """1 for MFA, more for stronger built-in strengths, None for a custom strength (0: no MFA)."""
    grant = grant or {}
    sid = strength_id(grant)
    if sid is None:
        return 1 if "mfa" in (grant.get("builtInControls") or []) else 0
    if "mfa" in (grant.get("builtInControls") or []) and grant.get("operator", "OR") == "OR":
        return 1  # either satisfies: plain MFA is enough
    return STRENGTH_RANKS.get(sid)


def describe_grant(grant: dict[str, Any] | None) -> str:
    sid = strength_id(grant)
    if sid is None:
        return "the mfa control" if "mfa" in ((grant or {}).get("builtInControls") or []) else "no MFA"
    name = next((label for label, gid in GRANTS.values() if gid == sid), None)
    return name or f"authentication strength {sid}"


def is_downgrade(grant: dict[str, Any] | None, option: str) -> bool:
    """Moving `grant` to `option` would ask less (or maybe less: a custom strength is never replaced)."""
    current = grant_rank(grant)
    wanted = grant_rank(grant_controls(option))
    return current is None or current > (wanted or 0)


def grant_problem(policy: dict[str, Any], ctx: Any) -> str | None:
    """Why the policy's grant should be changed to the run's `grant` option, or None.

    An enabled policy is never weakened: when the option asks less than it (the default `mfa` against an
    enforced phishing-resistant policy, say), it keeps its grant (see `kept_grant_note`). A policy that
    does not enforce yet (report-only, disabled) takes the option either way."""
    option = wanted_grant(ctx)
    grant = policy.get("grantControls") or {}
    if not requires_mfa_grant(policy) or grant_matches(grant, option):
        return None
    if policy.get("state") == "enabled" and is_downgrade(grant, option):
        return None
    return f"grant is {describe_grant(grant)}, the run asks for {GRANTS[option][0].lower()}"


def kept_grant_note(policy: dict[str, Any] | None, ctx: Any) -> str | None:
    """A line for the step log when an enforced policy keeps a stronger grant than the option asks."""
    if not policy or not requires_mfa_grant(policy):
        return None
    option = wanted_grant(ctx)
    grant = policy.get("grantControls") or {}
    if grant_matches(grant, option) or grant_problem(policy, ctx):
        return None
    return (
        f"the enforced policy keeps {describe_grant(grant)} (the run asked for "
        f"{GRANTS[option][0].lower()}): a run never weakens an enforced policy; change it by hand if "
        "that is what you want"
    )


def fixed_grant(grant: dict[str, Any] | None, option: str) -> dict[str, Any]:
    """`grant` changed to ask what `option` asks, other controls and the operator kept (the whole object
    is sent: Graph replaces grantControls as a whole)."""
    grant = grant or {}
    others = [c for c in grant.get("builtInControls") or [] if c != "mfa"]
    wanted = GRANTS[option][1]
    return {
        "operator": grant.get("operator") or "OR",
        "builtInControls": others + ["mfa"] if wanted is None else others,
        "customAuthenticationFactors": list(grant.get("customAuthenticationFactors") or []),
        "termsOfUse": list(grant.get("termsOfUse") or []),
        "authenticationStrength": None if wanted is None else {"id": wanted},
    }


def grant_signature(grant: dict[str, Any] | None) -> tuple:
    """What a grant asks, for comparing two reads (a strength by id: Graph returns its whole object)."""
    grant = grant or {}
    return (
        grant.get("operator") or "OR",
        tuple(sorted(grant.get("builtInControls") or [])),
        tuple(sorted(grant.get("customAuthenticationFactors") or [])),
        tuple(sorted(grant.get("termsOfUse") or [])),
        strength_id(grant),
    )


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
    grant = grant_problem(policy, ctx)
    if grant:
        problems.append(grant)
    return problems


def requires_mfa_grant(policy: dict[str, Any]) -> bool:
    grant = policy.get("grantControls") or {}
    return "mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength"))


def scope_fix(policy: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The PATCH body that fixes what `scope_problems` names: our scope and exclusions merged into the
    conditions, and the run's grant when the policy no longer asks for MFA or asks it otherwise."""
    body: dict[str, Any] = {"conditions": fixed_conditions(policy, ctx)}
    if not requires_mfa_grant(policy):
        body["grantControls"] = grant_controls(wanted_grant(ctx))
    elif grant_problem(policy, ctx):
        body["grantControls"] = fixed_grant(policy.get("grantControls"), wanted_grant(ctx))
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
    what = "grant controls as verified"
    option = wanted_grant(ctx)
    if not grant_matches(grant, option):
        # This run asks for another grant than the verified one (staff chose it): the option wins.
        grant, what = fixed_grant(grant, option), f"grant as the run asks ({option})"
    current = policy.get("grantControls")
    if policy.get("state") == "enabled" and requires_mfa_grant(policy) and is_downgrade(current, option):
        grant = current  # an enforced policy is never weakened (see grant_problem)
    if grant_signature(grant) != grant_signature(current):
        body["grantControls"] = copy.deepcopy(grant)
        fixes.append(what)
    if policy.get("state") == "disabled":
        body["state"] = REPORT_ONLY
        fixes.append("disabled -> report-only")
    return body, fixes
