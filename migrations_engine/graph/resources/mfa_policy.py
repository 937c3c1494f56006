"""The Conditional Access policy a migration converges on ("[GRANT] Require MFA all users"): its scope,
the body it is created with, how an existing policy is recognised as one to adopt, what keeps one from
fitting and the PATCH that fixes it.

A `Scope` is what a run's policy covers (everyone or the pilot group, break-glass excluded, the grant
asked for). A step builds it from its context (`StepContext.scope`); the drift watch from a finished run
(`Scope.of`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from migrations_engine.graph.resources.grants import (
    GRANTS,
    MFA_GRANT,
    asks_mfa,
    describe_grant,
    fixed_grant,
    grant_controls,
    grant_matches,
    grant_signature,
    is_downgrade,
)
from migrations_engine.graph.resources.policies import REPORT_ONLY, normalized
from migrations_engine.graph.resources.policy_kinds import requires_mfa_for_all

POLICY_NAME = "[GRANT] Require MFA all users"
# What a verified run remembers of its policy (`RunItem.state["policy_baseline"]`): enough to tell later
# whether anyone changed it (the drift watch) and to put it back (a re-run of the same scope).
BASELINE_FIELDS = ("id", "displayName", "state", "conditions", "grantControls")


@dataclass(frozen=True)
class Scope:
    """Who a run's policy covers and what it asks of them."""

    mode: str  # "full" (all users), "pilot" (one group), "plan"
    break_glass_ids: tuple[str, ...] = ()
    break_glass_group: str | None = None
    pilot_group_id: str | None = None
    grant: str = "mfa"  # a key of grants.GRANTS

    @classmethod
    def of(
        cls, state: dict[str, Any], mode: str, pilot_group_id: Any, options: dict[str, Any] | None
    ) -> Scope:
        """From a run item's checkpoint state, its run's mode, pilot group and options."""
        grant = (options or {}).get("grant") or "mfa"
        return cls(
            mode=mode,
            break_glass_ids=tuple(state.get("break_glass_ids", [])),
            break_glass_group=state.get("break_glass_group") or None,
            pilot_group_id=str(pilot_group_id) if pilot_group_id else None,
            grant=grant if grant in GRANTS else "mfa",
        )

    @property
    def pilot(self) -> bool:
        return self.mode == "pilot"


def scope_users(scope: Scope) -> dict[str, Any]:
    """`conditions.users` for this run: everyone (full) or the pilot group, minus break-glass."""
    users: dict[str, Any] = {"excludeUsers": sorted(scope.break_glass_ids)}
    if scope.break_glass_group:
        users["excludeGroups"] = [scope.break_glass_group]
    if scope.pilot:
        users["includeUsers"] = []
        users["includeGroups"] = [str(scope.pilot_group_id)]
    else:
        users["includeUsers"] = ["All"]
    return users


def conditions_for(scope: Scope) -> dict[str, Any]:
    """The scope's users, every cloud app, every client app (the main and the session policy alike)."""
    return {
        "users": scope_users(scope),
        "applications": {"includeApplications": ["All"]},
        "clientAppTypes": ["all"],
    }


def desired_policy(scope: Scope) -> dict[str, Any]:
    """The article's policy: all (or pilot) users, all cloud apps, all client apps, require MFA."""
    return {
        "displayName": POLICY_NAME,
        "state": REPORT_ONLY,
        "conditions": conditions_for(scope),
        "grantControls": grant_controls(scope.grant),
    }


def is_candidate(policy: dict[str, Any], scope: Scope) -> bool:
    """A policy this run may adopt instead of creating one: ours by name, or one that already requires
    MFA for the same users and all apps (a Microsoft-managed one included)."""
    if policy.get("displayName") == POLICY_NAME:
        return True
    if scope.pilot:
        conditions = policy.get("conditions") or {}
        users = conditions.get("users") or {}
        apps = conditions.get("applications") or {}
        return (
            str(scope.pilot_group_id) in (users.get("includeGroups") or [])
            and "All" in (apps.get("includeApplications") or [])
            and asks_mfa(policy)
        )
    return requires_mfa_for_all(policy)


def grant_problem(policy: dict[str, Any], scope: Scope) -> str | None:
    """Why the policy's grant should be changed to the run's `grant` option, or None.

    An enabled policy is never weakened: when the option asks less than it (the default `mfa` against an
    enforced phishing-resistant policy, say), it keeps its grant (see `kept_grant_note`). A policy that
    does not enforce yet (report-only, disabled) takes the option either way."""
    grant = policy.get("grantControls") or {}
    if not asks_mfa(policy) or grant_matches(grant, scope.grant):
        return None
    if policy.get("state") == "enabled" and is_downgrade(grant, scope.grant):
        return None
    return f"grant is {describe_grant(grant)}, the run asks for {GRANTS[scope.grant][0].lower()}"


def kept_grant_note(policy: dict[str, Any] | None, scope: Scope) -> str | None:
    """A line for the step log when an enforced policy keeps a stronger grant than the option asks."""
    if not policy or not asks_mfa(policy):
        return None
    grant = policy.get("grantControls") or {}
    if grant_matches(grant, scope.grant) or grant_problem(policy, scope):
        return None
    return (
        f"the enforced policy keeps {describe_grant(grant)} (the run asked for "
        f"{GRANTS[scope.grant][0].lower()}): a run never weakens an enforced policy; change it by hand if "
        "that is what you want"
    )


def scope_problems(policy: dict[str, Any], scope: Scope) -> list[str]:
    """What keeps a policy from being the one this run needs (empty when it fits)."""
    problems = []
    users = (policy.get("conditions") or {}).get("users") or {}
    wanted = scope_users(scope)
    missing = set(wanted["excludeUsers"]) - set(users.get("excludeUsers") or [])
    if missing:
        problems.append(f"break-glass accounts not excluded: {len(missing)}")
    if wanted.get("excludeGroups") and not set(wanted["excludeGroups"]) <= set(
        users.get("excludeGroups") or []
    ):
        problems.append("break-glass group not excluded")
    if scope.pilot:
        if wanted["includeGroups"][0] not in (users.get("includeGroups") or []):
            problems.append("pilot group not included")
    elif "All" not in (users.get("includeUsers") or []):
        problems.append("does not include all users")
    apps = (policy.get("conditions") or {}).get("applications") or {}
    if "All" not in (apps.get("includeApplications") or []):
        problems.append("does not cover all cloud apps")
    if not asks_mfa(policy):
        problems.append("does not require MFA")
    grant = grant_problem(policy, scope)
    if grant:
        problems.append(grant)
    return problems


def scope_fix(policy: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """The PATCH body that fixes what `scope_problems` names: our scope and exclusions merged into the
    conditions, and the run's grant when the policy no longer asks for MFA or asks it otherwise."""
    body: dict[str, Any] = {"conditions": fixed_conditions(policy, scope)}
    if not asks_mfa(policy):
        body["grantControls"] = grant_controls(scope.grant)
    elif grant_problem(policy, scope):
        body["grantControls"] = fixed_grant(policy.get("grantControls"), scope.grant)
    return body


def fixed_conditions(policy: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """The policy's conditions with our scope and break-glass exclusions merged in (nothing removed
    but what full scope replaces)."""
    conditions = copy.deepcopy(policy.get("conditions") or {})
    users = conditions.setdefault("users", {})
    wanted = scope_users(scope)
    users["excludeUsers"] = sorted(set(users.get("excludeUsers") or []) | set(wanted["excludeUsers"]))
    if wanted.get("excludeGroups"):
        users["excludeGroups"] = sorted(set(users.get("excludeGroups") or []) | set(wanted["excludeGroups"]))
    if scope.pilot:
        users["includeGroups"] = sorted(set(users.get("includeGroups") or []) | set(wanted["includeGroups"]))
    else:
        users["includeUsers"] = ["All"]
        users["includeGroups"] = []
    apps = conditions.setdefault("applications", {})
    if "All" not in (apps.get("includeApplications") or []):
        apps["includeApplications"] = ["All"]
    return conditions


def baseline_of(policy: dict[str, Any]) -> dict[str, Any]:
    """The part of a policy a verified run remembers (see BASELINE_FIELDS)."""
    return {key: copy.deepcopy(policy.get(key)) for key in BASELINE_FIELDS}


def restore_fix(policy: dict[str, Any], baseline: dict[str, Any], scope: Scope) -> tuple[dict, list[str]]:
    """The PATCH body that puts a policy back as an earlier run of the same scope verified it (its
    conditions with this run's scope and break-glass merged in, its grant), and what it fixes.

    A disabled policy goes to report-only with the fix: report-only first, the cut-over enables it. An
    enabled one stays enabled (turning it to report-only would leave users without MFA meanwhile)."""
    body: dict[str, Any] = {}
    fixes: list[str] = []
    wanted = fixed_conditions({"conditions": baseline.get("conditions") or {}}, scope)
    if normalized(wanted) != normalized(policy.get("conditions") or {}):
        body["conditions"] = wanted
        fixes.append("conditions (scope, exclusions, apps) as verified")
    grant = baseline.get("grantControls") or MFA_GRANT
    what = "grant controls as verified"
    if not grant_matches(grant, scope.grant):
        # This run asks for another grant than the verified one (staff chose it): the option wins.
        grant, what = fixed_grant(grant, scope.grant), f"grant as the run asks ({scope.grant})"
    current = policy.get("grantControls")
    if policy.get("state") == "enabled" and asks_mfa(policy) and is_downgrade(current, scope.grant):
        grant = current  # an enforced policy is never weakened (see grant_problem)
    if grant_signature(grant) != grant_signature(current):
        body["grantControls"] = copy.deepcopy(grant)
        fixes.append(what)
    if policy.get("state") == "disabled":
        body["state"] = REPORT_ONLY
        fixes.append("disabled -> report-only")
    return body, fixes
